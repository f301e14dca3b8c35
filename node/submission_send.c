/* Message submission after the final dot; see submission.h.
 *
 * A message's way, every step able to end it with one reply:
 *   1. worker thread: the header section is read (From and Sender
 *      addresses, whether Date and Message-ID are there), the delivery id
 *      is hashed from the client's bytes, and the trace and missing
 *      header fields are written in the room kept before the content;
 *   2. loop: the From and Sender addresses are checked against the
 *      directory (553 5.7.1);
 *   3. local recipients (node/deliver.h), when there are any;
 *   4. the rest to the relay in one SMTP session (lib/smtp_client);
 *   5. the reply: 250 when all of it succeeded. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "imf.h"
#include "log.h"
#include "mem.h"
#include "pool.h"
#include "strbuf.h"
#include "submission_private.h"

/* One message past the final dot (owns the transaction's data). */
struct sub_msg {
	struct node_submission *sub;
	struct mc_smtp_session *session;
	struct sub_msg *prev, *next;
	char sid[32];
	uint64_t account_id;
	char *user, *sender;
	struct node_deliver_target *local;
	size_t local_count;
	struct sub_addr_list relay;
	unsigned client_flags; /* MC_SMTP_CLIENT_NEED_* */
	char *buf;
	size_t len;
	char *received, *date, *msgid; /* whole header fields, with CRLF */
	/* From the worker: */
	const char *refusal; /* static text for a 554 5.6.0, or NULL */
	struct sub_addr_list from;
	char id_base[2 * 32 + 1];
	const char *out; /* Return-Path + added fields + content, in buf */
	size_t out_len, rp_len;
	uv_work_t work;
	/* Relay handoff: */
	uv_getaddrinfo_t gai;
	bool resolving;
	struct mc_smtp_client *client;
};

/* ---- small helpers ---- */

/* RFC 5322 3.3 in UTC, without the locale's day and month names. */
static void
rfc5322_date(time_t t, char *buf, size_t size)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, size, "%s, %02d %s %d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
	         tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
	         tm.tm_min, tm.tm_sec);
}

static void
hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* A client-given name made safe for a header comment: printable ASCII
 * without parentheses or backslashes, at most SUB_HELO_MAX octets. */
static void
trace_name(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; in != NULL && *in != '\0' && n + 1 < size && n < SUB_HELO_MAX; in++) {
		unsigned char c = (unsigned char)*in;

		out[n++] = c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\'
		                   ? (char)c
		                   : '?';
	}
	out[n] = '\0';
}

/* ---- after the final dot ---- */

static void
msg_finish(struct sub_msg *m, unsigned code, const char *enhanced, const char *text)
{
	mc_smtp_session_reply(m->session, code, enhanced, text);
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		m->sub->msgs = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	sub_targets_free(m->local, m->local_count);
	sub_addr_list_free(&m->relay);
	sub_addr_list_free(&m->from);
	free(m->user);
	free(m->sender);
	free(m->buf);
	free(m->received);
	free(m->date);
	free(m->msgid);
	free(m);
}

/* Worker: the From and Sender addresses (checked on the loop, where the
 * directory lives), Date and Message-ID present or not. A header section
 * that cannot be read whole is refused: an address past a limit would go
 * unchecked. */
static void
read_header(struct sub_msg *m, const char *content, size_t len, bool *date_r,
            bool *msgid_r)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_header hdr;
	size_t from_fields = 0, from_addrs = 0;

	mc_imf_header_parse(&hdr, pool, content, len, NULL);
	*date_r = mc_imf_header_find(&hdr, "Date") != NULL;
	*msgid_r = mc_imf_header_find(&hdr, "Message-ID") != NULL;
	if (hdr.truncated & (MC_IMF_TRUNC_HEADER | MC_IMF_TRUNC_FIELDS))
		m->refusal = "Header section too large";
	for (size_t i = 0; m->refusal == NULL && i < hdr.count; i++) {
		const struct mc_imf_field *f = &hdr.fields[i];
		bool from = strcasecmp(f->name, "From") == 0;
		struct mc_imf_addr_list list;

		if (!from && strcasecmp(f->name, "Sender") != 0)
			continue;
		if (f->size > MC_IMF_MAX_FIELD_DEFAULT) {
			m->refusal = "From or Sender header field too long";
			break;
		}
		mc_imf_addr_parse(&list, pool, f->value, f->value_len, SUB_FROM_MAX);
		if (list.truncated)
			m->refusal = "Too many addresses in the From or Sender header field";
		for (size_t j = 0; m->refusal == NULL && j < list.count; j++) {
			const struct mc_imf_address *a = &list.addrs[j];
			char *addr;

			if (a->host == NULL)
				continue; /* a group's start or end */
			if (a->invalid) {
				m->refusal = "Malformed address in the From or Sender header field";
				break;
			}
			addr = mc_asprintf("%s@%s", a->mailbox, a->host);
			if (m->from.count >= SUB_FROM_MAX && !sub_addr_list_has(&m->from, addr))
				m->refusal = "Too many From and Sender addresses";
			else
				sub_addr_list_add(&m->from, addr);
			free(addr);
			from_addrs += from;
		}
		from_fields += from;
	}
	if (m->refusal == NULL && from_fields == 0)
		m->refusal = "Message has no From header field";
	else if (m->refusal == NULL && from_addrs == 0)
		m->refusal = "The From header field has no address";
	mc_pool_free(&pool);
}

/* Worker: the delivery id, a hash of what the client sent (account,
 * sender, content), so that the same message sent again after a 451 is
 * recognised by local delivery although the fields we add differ. */
static void
hash_id(struct sub_msg *m, const char *content, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[32];
	char account[32];
	unsigned dlen = 0;

	snprintf(account, sizeof(account), "%" PRIu64, m->account_id);
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, account, strlen(account) + 1) != 1 ||
	    EVP_DigestUpdate(md, m->sender, strlen(m->sender) + 1) != 1 ||
	    EVP_DigestUpdate(md, content, len) != 1 ||
	    EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != sizeof(digest))
		abort(); /* out of memory in OpenSSL */
	EVP_MD_CTX_free(md);
	hex(digest, sizeof(digest), m->id_base);
}

static void
prepare_work(uv_work_t *w)
{
	struct sub_msg *m = w->data;
	const char *content = m->buf + SUB_PREFIX_ROOM;
	size_t len = m->len - SUB_PREFIX_ROOM;
	struct mc_strbuf pre;
	bool has_date, has_msgid;

	read_header(m, content, len, &has_date, &has_msgid);
	if (m->refusal != NULL)
		return;
	hash_id(m, content, len);
	mc_strbuf_init(&pre);
	mc_strbuf_addf(&pre, "Return-Path: <%s>\r\n", m->sender);
	m->rp_len = pre.len;
	mc_strbuf_adds(&pre, m->received);
	if (!has_date)
		mc_strbuf_adds(&pre, m->date);
	if (!has_msgid)
		mc_strbuf_adds(&pre, m->msgid);
	if (pre.len > SUB_PREFIX_ROOM) {
		m->refusal = "Trace header fields too long"; /* cannot happen */
	} else {
		memcpy(m->buf + SUB_PREFIX_ROOM - pre.len, pre.data, pre.len);
		m->out = m->buf + SUB_PREFIX_ROOM - pre.len;
		m->out_len = pre.len + len;
	}
	mc_strbuf_fini(&pre);
}

static void relay_start(struct sub_msg *m);

static void
local_done(void *arg, const char *key, const char *error)
{
	struct sub_msg *m = arg;
	struct node_submission *sub = m->sub;
	const struct node_deliver_target *failed = NULL, *full = NULL;
	char text[400];

	(void)key;
	if (error != NULL) {
		msg_finish(m, 451, "4.3.0", error);
		return;
	}
	for (size_t i = 0; i < m->local_count; i++) {
		const struct node_deliver_target *t = &m->local[i];

		switch (t->result) {
		case NODE_STORE_OK:
		case NODE_STORE_DUPLICATE:
			mc_info("submission delivered session=%s rcpt=%s uid=%" PRIu64 " dup=%d",
			        m->sid, t->address, t->uid, t->result == NODE_STORE_DUPLICATE);
			if (t->result == NODE_STORE_OK && sub->set.delivered != NULL)
				sub->set.delivered(t->account_id, sub->set.delivered_ctx);
			break;
		case NODE_STORE_FENCED:
			/* The shard moved since RCPT: its new owner gets it
			 * through the relay. */
			if (sub->relay_host[0] != '\0') {
				mc_info("submission session=%s rcpt=%s shard moved: to the relay",
				        m->sid, t->address);
				sub_addr_list_add(&m->relay, t->address);
				break;
			}
			failed = t;
			break;
		case NODE_STORE_OVERQUOTA:
			full = t;
			break;
		default:
			failed = t;
			break;
		}
	}
	if (failed != NULL) {
		mc_warn("submission deferred session=%s rcpt=%s error=\"%s\"", m->sid,
		        failed->address, failed->error);
		snprintf(text, sizeof(text), "Mailbox of <%s> unavailable, try again",
		         failed->address);
		msg_finish(m, 451, "4.3.0", text);
	} else if (full != NULL) {
		mc_info("submission refused session=%s rcpt=%s error=\"%s\"", m->sid,
		        full->address, full->error);
		snprintf(text, sizeof(text), "Mailbox of <%s> is full", full->address);
		msg_finish(m, 552, "5.2.2", text);
	} else {
		relay_start(m);
	}
}

/* Loop, after prepare_work: the header's addresses, then on its way. */
static void
prepare_done(uv_work_t *w, int status)
{
	struct sub_msg *m = w->data;
	struct node_submission *sub = m->sub;
	const struct mc_directory *dir = mc_cfgsync_directory(sub->set.sync);
	char text[400];

	(void)status;
	if (m->refusal != NULL) {
		mc_info("submission refused session=%s user=%s error=\"%s\"", m->sid, m->user,
		        m->refusal);
		msg_finish(m, 554, "5.6.0", m->refusal);
		return;
	}
	for (size_t i = 0; i < m->from.count; i++) {
		if (sub_address_allowed(dir, m->account_id, m->from.v[i]))
			continue;
		mc_info("submission refused session=%s user=%s header_from=<%s>", m->sid,
		        m->user, m->from.v[i]);
		snprintf(text, sizeof(text),
		         "From/Sender address <%s> is not one of the addresses of %s",
		         m->from.v[i], m->user);
		msg_finish(m, 553, "5.7.1", text);
		return;
	}
	mc_info("submission message session=%s user=%s sender=<%s> size=%zu local=%zu "
	        "relay=%zu",
	        m->sid, m->user, m->sender, m->out_len - m->rp_len, m->local_count,
	        m->relay.count);
	if (m->local_count == 0) {
		relay_start(m);
		return;
	}
	node_deliver_start(sub->loop,
	                   &(struct node_deliver_services){.sync = sub->set.sync,
	                                                   .blob = sub->set.blob,
	                                                   .store = sub->set.store},
	                   &(struct node_deliver_request){
	                           .data = m->out,
	                           .len = m->out_len,
	                           .targets = m->local,
	                           .target_count = m->local_count,
	                           .id_base = m->id_base,
	                           .internaldate = (int64_t)time(NULL),
	                           .log_id = m->sid,
	                   },
	                   local_done, m);
}

/* The header fields we may add, made on the loop (session details). */
static void
make_fields(struct sub_msg *m, struct mc_smtp_session *s, const char *hostname)
{
	char date[64], helo[SUB_HELO_MAX + 1];
	unsigned char rnd[8];
	char rnd_hex[2 * sizeof(rnd) + 1];
	time_t now = time(NULL);
	struct tm tm;
	bool tls = mc_smtp_session_tls(s);
	bool ipv6 = strchr(mc_smtp_session_peer_ip(s), ':') != NULL;

	rfc5322_date(now, date, sizeof(date));
	trace_name(mc_smtp_session_helo(s), helo, sizeof(helo));
	m->received = mc_asprintf("Received: from %s ([%s%s])\r\n"
	                          "\tby %s with %s (%s:%s:%d)\r\n"
	                          "\tid %s; %s\r\n",
	                          helo[0] ? helo : "unknown", ipv6 ? "IPv6:" : "",
	                          mc_smtp_session_peer_ip(s), hostname,
	                          mc_smtp_session_protocol(s),
	                          tls ? mc_smtp_session_tls_version(s) : "-",
	                          tls ? mc_smtp_session_tls_cipher(s) : "-",
	                          mc_smtp_session_tls_bits(s), m->sid, date);
	m->date = mc_asprintf("Date: %s\r\n", date);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		uint64_t t = uv_hrtime();

		memcpy(rnd, &t, sizeof(rnd));
	}
	hex(rnd, sizeof(rnd), rnd_hex);
	gmtime_r(&now, &tm);
	m->msgid = mc_asprintf("Message-ID: <%04d%02d%02d%02d%02d%02d.%s@%s>\r\n",
	                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	                       tm.tm_min, tm.tm_sec, rnd_hex, hostname);
}

void
node_submission_send(struct node_submission *sub, struct sub_sess *ss)
{
	struct mc_smtp_session *s = ss->session;
	const struct mc_smtp_txn *txn = mc_smtp_session_txn(s);
	struct sub_msg *m = mc_malloc(sizeof(*m));

	ss->messages++;
	m->sub = sub;
	m->session = s;
	snprintf(m->sid, sizeof(m->sid), "%s", mc_smtp_session_id(s));
	m->account_id = ss->account_id;
	m->user = mc_strdup(ss->user);
	m->sender = mc_strdup(txn->mail_from);
	if (txn->body == MC_SMTP_BODY_8BITMIME || txn->eightbit)
		m->client_flags |= MC_SMTP_CLIENT_NEED_8BITMIME;
	if (txn->smtputf8)
		m->client_flags |= MC_SMTP_CLIENT_NEED_SMTPUTF8;
	/* The message owns the transaction's data now. */
	m->local = ss->local;
	m->local_count = ss->local_count;
	m->relay = ss->relay;
	m->buf = ss->buf;
	m->len = ss->len;
	ss->local = NULL;
	ss->local_count = ss->local_cap = 0;
	memset(&ss->relay, 0, sizeof(ss->relay));
	ss->buf = NULL;
	ss->len = ss->cap = 0;
	make_fields(m, s, sub->hostname);
	m->next = sub->msgs;
	if (sub->msgs != NULL)
		sub->msgs->prev = m;
	sub->msgs = m;
	m->work.data = m;
	uv_queue_work(sub->loop, &m->work, prepare_work, prepare_done);
}

/* ---- the relay handoff ---- */

static void
relay_done(const struct mc_smtp_client_result *res, void *ctx)
{
	struct sub_msg *m = ctx;
	const struct mc_smtp_client_rcpt_result *bad = NULL;
	char text[600];

	m->client = NULL;
	for (size_t i = 0; i < res->rcpt_count; i++) {
		const struct mc_smtp_client_rcpt_result *r = &res->rcpts[i];

		if (r->outcome == MC_SMTP_CLIENT_TEMPFAIL ||
		    (r->outcome == MC_SMTP_CLIENT_PERMFAIL && bad == NULL))
			bad = r;
		if (r->outcome == MC_SMTP_CLIENT_TEMPFAIL)
			break;
	}
	if (bad == NULL) {
		mc_info("submission relayed session=%s relay=%s rcpts=%zu", m->sid,
		        res->remote, res->rcpt_count);
		msg_finish(m, 250, "2.0.0", "Ok: message accepted for delivery");
		return;
	}
	mc_warn("submission relay failed session=%s relay=%s status=%s code=%u "
	        "enhanced=%s text=\"%s\" delivered=%zu tempfail=%zu permfail=%zu",
	        m->sid, res->remote, mc_smtp_client_status_name(res->status), bad->code,
	        bad->enhanced, bad->text, res->delivered, res->tempfail, res->permfail);
	if (bad->outcome == MC_SMTP_CLIENT_TEMPFAIL) {
		snprintf(text, sizeof(text), "Relay did not take the message (%s), try again",
		         bad->text);
		msg_finish(m, 451, bad->enhanced[0] == '4' ? bad->enhanced : "4.4.0", text);
		return;
	}
	snprintf(text, sizeof(text), "Relay refused the message: %s", bad->text);
	msg_finish(m,
	           bad->code == 550 || bad->code == 552 || bad->code == 553 ? bad->code
	                                                                   : 554,
	           bad->enhanced[0] == '5' ? bad->enhanced : "5.0.0", text);
}

static void
relay_connect(struct sub_msg *m, const char *ip)
{
	struct node_submission *sub = m->sub;
	struct mc_smtp_client_rcpt *rcpts = mc_calloc(m->relay.count, sizeof(*rcpts));
	const char *err = NULL;
	/* Well inside the engine's 10 minutes for the data_end answer. */
	struct mc_smtp_client_settings cs = {
	        .protocol = MC_SMTP_CLIENT_SMTP,
	        .ip = ip,
	        .port = sub->relay_port,
	        .helo_name = sub->hostname,
	        .remote_name = sub->relay_host,
	        .tls = sub->relay_tls,
	        .tls_ctx = sub->relay_ctx,
	        .timeouts = {.connect = 10000, .greeting = 60000, .command = 60000,
	                     .tls = 30000, .mail = 60000, .rcpt = 60000,
	                     .data_init = 60000, .data_block = 60000,
	                     .data_end = 180000, .quit = 10000, .session = 360000},
	        .log_id = m->sid,
	};
	struct mc_smtp_client_message msg = {
	        .sender = m->sender,
	        .rcpts = rcpts,
	        .rcpt_count = m->relay.count,
	        .flags = m->client_flags,
	        .data = m->out + m->rp_len,
	        .size = m->out_len - m->rp_len,
	};

	for (size_t i = 0; i < m->relay.count; i++)
		rcpts[i].address = m->relay.v[i];
	if (mc_smtp_client_start(sub->loop, &cs, &msg, relay_done, m, &m->client, &err) < 0) {
		mc_warn("submission relay not started session=%s error=\"%s\"", m->sid, err);
		m->client = NULL;
		msg_finish(m, 451, "4.4.0", "Relay unreachable, try again");
	}
	free(rcpts);
}

static void
relay_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct sub_msg *m = req->data;
	char ip[INET6_ADDRSTRLEN] = "";

	m->resolving = false;
	if (status == 0 && res != NULL) {
		if (res->ai_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, ip,
			          sizeof(ip));
		else
			inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip,
			          sizeof(ip));
	}
	uv_freeaddrinfo(res);
	if (ip[0] == '\0' || m->sub->closing) {
		mc_warn("submission relay name not resolved session=%s relay=%s error=\"%s\"",
		        m->sid, m->sub->relay_host, status < 0 ? uv_strerror(status) : "none");
		msg_finish(m, 451, "4.4.3", "Relay address not found, try again");
		return;
	}
	relay_connect(m, ip);
}

static void
relay_start(struct sub_msg *m)
{
	struct node_submission *sub = m->sub;
	unsigned char addr[16];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	int rv;

	if (m->relay.count == 0) {
		msg_finish(m, 250, "2.0.0", "Ok: delivered");
		return;
	}
	/* A client that left never saw a 250 and sends again: relaying now
	 * would make a second copy. */
	if (mc_smtp_session_gone(m->session)) {
		msg_finish(m, 451, "4.4.2", "Client gone");
		return;
	}
	if (sub->closing) {
		msg_finish(m, 451, "4.3.2", "Shutting down, try again");
		return;
	}
	if (inet_pton(AF_INET, sub->relay_host, addr) == 1 ||
	    inet_pton(AF_INET6, sub->relay_host, addr) == 1) {
		relay_connect(m, sub->relay_host);
		return;
	}
	m->gai.data = m;
	rv = uv_getaddrinfo(sub->loop, &m->gai, relay_resolved, sub->relay_host, NULL,
	                    &hints);
	if (rv < 0) {
		mc_warn("submission relay name not resolved session=%s error=\"%s\"", m->sid,
		        uv_strerror(rv));
		msg_finish(m, 451, "4.4.3", "Relay address not found, try again");
		return;
	}
	m->resolving = true;
}

void
node_submission_send_abort(struct node_submission *sub)
{
	for (struct sub_msg *m = sub->msgs; m != NULL; m = m->next) {
		if (m->client != NULL)
			mc_smtp_client_abort(m->client);
		if (m->resolving)
			uv_cancel((uv_req_t *)&m->gai);
	}
}
