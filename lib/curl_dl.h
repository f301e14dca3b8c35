/* libcurl, loaded when first needed: only a mailbox node whose blob store
 * is S3 uses it, and linking it pulls a dozen more libraries (SSH, RTMP,
 * HTTP/2, PSL, brotli...) and their initialisers into the process: about
 * 0.8 MB of resident memory on an idle node with a file:// store. This
 * header is for lib/blob_s3.c: after it, the curl_* calls it makes go
 * through the table that mc_curl_load fills from libcurl.so.4. */
#ifndef MC_CURL_DL_H
#define MC_CURL_DL_H

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

struct mc_curl_api {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption option, ...);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *h);
	const char *(*easy_strerror)(CURLcode code);
	struct curl_slist *(*slist_append)(struct curl_slist *list,
	                                   const char *s);
	void (*slist_free_all)(struct curl_slist *list);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption option, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t fd, int ev,
	                                 int *running);
	CURLMcode (*multi_assign)(CURLM *m, curl_socket_t fd, void *p);
	CURLMsg *(*multi_info_read)(CURLM *m, int *left);
	CURLMcode (*multi_cleanup)(CURLM *m);
	const char *(*multi_strerror)(CURLMcode code);
};

extern struct mc_curl_api mc_curl;

/* Load libcurl.so.4 and curl_global_init it, once (main thread, before
 * any other thread uses curl). -1 with *error_r when it is missing. */
int mc_curl_load(const char **error_r);

/* curl.h wraps these three in macros of its own. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_easy_init mc_curl.easy_init
#define curl_easy_setopt mc_curl.easy_setopt
#define curl_easy_getinfo mc_curl.easy_getinfo
#define curl_easy_cleanup mc_curl.easy_cleanup
#define curl_easy_strerror mc_curl.easy_strerror
#define curl_slist_append mc_curl.slist_append
#define curl_slist_free_all mc_curl.slist_free_all
#define curl_multi_init mc_curl.multi_init
#define curl_multi_setopt mc_curl.multi_setopt
#define curl_multi_add_handle mc_curl.multi_add_handle
#define curl_multi_remove_handle mc_curl.multi_remove_handle
#define curl_multi_socket_action mc_curl.multi_socket_action
#define curl_multi_assign mc_curl.multi_assign
#define curl_multi_info_read mc_curl.multi_info_read
#define curl_multi_cleanup mc_curl.multi_cleanup
#define curl_multi_strerror mc_curl.multi_strerror

#endif
