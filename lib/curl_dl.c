/* See curl_dl.h. */
#include "curl_dl.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "error.h"

struct mc_curl_api mc_curl;

static const struct {
	const char *name;
	size_t offset;
} symbols[] = {
        {"curl_global_init", offsetof(struct mc_curl_api, global_init)},
        {"curl_easy_init", offsetof(struct mc_curl_api, easy_init)},
        {"curl_easy_setopt", offsetof(struct mc_curl_api, easy_setopt)},
        {"curl_easy_getinfo", offsetof(struct mc_curl_api, easy_getinfo)},
        {"curl_easy_cleanup", offsetof(struct mc_curl_api, easy_cleanup)},
        {"curl_easy_strerror", offsetof(struct mc_curl_api, easy_strerror)},
        {"curl_slist_append", offsetof(struct mc_curl_api, slist_append)},
        {"curl_slist_free_all", offsetof(struct mc_curl_api, slist_free_all)},
        {"curl_multi_init", offsetof(struct mc_curl_api, multi_init)},
        {"curl_multi_setopt", offsetof(struct mc_curl_api, multi_setopt)},
        {"curl_multi_add_handle",
         offsetof(struct mc_curl_api, multi_add_handle)},
        {"curl_multi_remove_handle",
         offsetof(struct mc_curl_api, multi_remove_handle)},
        {"curl_multi_socket_action",
         offsetof(struct mc_curl_api, multi_socket_action)},
        {"curl_multi_assign", offsetof(struct mc_curl_api, multi_assign)},
        {"curl_multi_info_read", offsetof(struct mc_curl_api, multi_info_read)},
        {"curl_multi_cleanup", offsetof(struct mc_curl_api, multi_cleanup)},
        {"curl_multi_strerror", offsetof(struct mc_curl_api, multi_strerror)},
};

int
mc_curl_load(const char **error_r)
{
	static bool loaded;
	struct mc_curl_api api;
	void *lib, *fn;

	if (loaded)
		return 0;
	if ((lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL)) == NULL) {
		*error_r = mc_errorf("S3 needs libcurl (package libcurl4): %s",
		                     dlerror());
		return -1;
	}
	for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
		if ((fn = dlsym(lib, symbols[i].name)) == NULL) {
			*error_r = mc_errorf("libcurl.so.4 has no %s",
			                     symbols[i].name);
			return -1; /* kept loaded: harmless */
		}
		/* POSIX dlsym: a function's address as a data pointer. */
		memcpy((char *)&api + symbols[i].offset, &fn, sizeof(fn));
	}
	if (api.global_init(CURL_GLOBAL_DEFAULT) != 0) {
		*error_r = "libcurl initialisation failed";
		return -1;
	}
	mc_curl = api;
	loaded = true;
	return 0;
}
