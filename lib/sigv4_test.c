/* Tests for lib/sigv4 against published vectors only.
 *
 * 1. The AWS Signature Version 4 test suite (2015-08-30 edition; access key
 *    AKIDEXAMPLE, secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region
 *    us-east-1, service "service", time 20150830T123600Z), formerly at
 *    docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html.
 *    Expected canonical requests (.creq), strings to sign (.sts) and
 *    Authorization values (.authz) as carried by boto/botocore
 *    tests/unit/auth/aws4_testsuite/, awslabs/aws-c-auth
 *    tests/aws-signing-test-suite/v4/<name>/header-signed-request.txt and
 *    the AWS SDK for JavaScript's @aws-sdk/signature-v4 suite.fixture.js;
 *    every signature below appears in at least two of them. Used:
 *    get-vanilla, get-vanilla-empty-query-key,
 *    get-vanilla-query-order-key, get-vanilla-query-order-key-case,
 *    get-vanilla-query-order-value, get-vanilla-query-unreserved,
 *    get-vanilla-utf8-query, get-unreserved, get-utf8, get-space
 *    (normalize-path/get-space, aws-c-auth get-space-unnormalized),
 *    get-header-value-trim, get-header-key-duplicate,
 *    get-header-value-order, post-vanilla, post-vanilla-query,
 *    post-header-key-sort, post-header-value-case,
 *    post-x-www-form-urlencoded, post-x-www-form-urlencoded-parameters.
 *    Left out: the normalize-path cases that need "." / ".." removal (S3
 *    never normalises paths, neither does this signer) and aws-c-auth's
 *    rewritten post-x-www-form-urlencoded (it adds content-length).
 * 2. The Amazon S3 API Reference, "Signature Calculations for the
 *    Authorization Header: Transferring Payload in a Single Chunk"
 *    (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html),
 *    examples GET Object (with Range), PUT Object, GET Bucket Lifecycle and
 *    Get Bucket (List Objects): access key AKIAIOSFODNN7EXAMPLE, secret
 *    wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, bucket examplebucket,
 *    20130524T000000Z. The page prints the canonical requests, the hashes
 *    in the strings to sign and the signatures used here.
 * Behaviour tests after the vectors cover rejected input; they assert
 * only errors, no invented signature values. */
#include "sigv4.h"

#include <stdlib.h>

#include "mem.h"
#include "test.h"

#define SUITE_TIME ((time_t)1440938160) /* 20150830T123600Z */
#define S3_TIME ((time_t)1369353600)    /* 20130524T000000Z */
#define EMPTY MC_SIGV4_EMPTY_SHA256
#define FORM_HASH                                                              \
	"9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
#define PUT_HASH                                                               \
	"44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"

static const struct mc_sigv4_key suite_key = {
        .access_key_id = "AKIDEXAMPLE",
        .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .region = "us-east-1",
        .service = "service",
};

static const struct mc_sigv4_key s3_key = {
        .access_key_id = "AKIAIOSFODNN7EXAMPLE",
        .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        .region = "us-east-1",
        .service = "s3",
};

struct vector {
	const char *name;
	const struct mc_sigv4_key *key;
	time_t when;
	const char *method, *path;
	struct mc_sigv4_pair query[3];
	size_t query_count;
	struct mc_sigv4_pair headers[6];
	size_t header_count;
	const char *payload_hash;
	const char *creq;     /* the whole canonical request */
	const char *sts_hash; /* last line of the string to sign */
	const char *signed_headers;
	const char *signature;
};

/* The vector table keeps one vector per paragraph. */
/* clang-format off */
#define SUITE_HOST {"Host", "example.amazonaws.com"}
#define SUITE_DATE {"X-Amz-Date", "20150830T123600Z"}
#define SUITE_HDRS(...) {SUITE_HOST, __VA_ARGS__ SUITE_DATE}
#define SUITE_CANON_HD                                                       \
	"host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"        \
	"host;x-amz-date\n" EMPTY
#define UNRESERVED                                                           \
	"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

static const struct vector vectors[] = {
	{"get-vanilla", &suite_key, SUITE_TIME, "GET", "/", {}, 0,
	 SUITE_HDRS(), 2, EMPTY, "GET\n/\n\n" SUITE_CANON_HD,
	 "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
	 "host;x-amz-date",
	 "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
	{"get-vanilla-empty-query-key", &suite_key, SUITE_TIME, "GET", "/",
	 {{"Param1", "value1"}}, 1, SUITE_HDRS(), 2, EMPTY,
	 "GET\n/\nParam1=value1\n" SUITE_CANON_HD,
	 "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
	 "host;x-amz-date",
	 "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
	{"get-vanilla-query-order-key", &suite_key, SUITE_TIME, "GET", "/",
	 {{"Param1", "value2"}, {"Param1", "Value1"}}, 2, SUITE_HDRS(), 2,
	 EMPTY, "GET\n/\nParam1=Value1&Param1=value2\n" SUITE_CANON_HD,
	 "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
	 "host;x-amz-date",
	 "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
	{"get-vanilla-query-order-key-case", &suite_key, SUITE_TIME, "GET", "/",
	 {{"Param2", "value2"}, {"Param1", "value1"}}, 2, SUITE_HDRS(), 2,
	 EMPTY, "GET\n/\nParam1=value1&Param2=value2\n" SUITE_CANON_HD,
	 "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
	 "host;x-amz-date",
	 "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
	{"get-vanilla-query-order-value", &suite_key, SUITE_TIME, "GET", "/",
	 {{"Param1", "value2"}, {"Param1", "value1"}}, 2, SUITE_HDRS(), 2,
	 EMPTY, "GET\n/\nParam1=value1&Param1=value2\n" SUITE_CANON_HD,
	 "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
	 "host;x-amz-date",
	 "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
	{"get-vanilla-query-unreserved", &suite_key, SUITE_TIME, "GET", "/",
	 {{UNRESERVED, UNRESERVED}}, 1, SUITE_HDRS(), 2, EMPTY,
	 "GET\n/\n" UNRESERVED "=" UNRESERVED "\n" SUITE_CANON_HD,
	 "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
	 "host;x-amz-date",
	 "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
	{"get-vanilla-utf8-query", &suite_key, SUITE_TIME, "GET", "/",
	 {{"\xe1\x88\xb4", "bar"}}, 1, SUITE_HDRS(), 2, EMPTY,
	 "GET\n/\n%E1%88%B4=bar\n" SUITE_CANON_HD,
	 "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
	 "host;x-amz-date",
	 "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
	{"get-unreserved", &suite_key, SUITE_TIME, "GET", "/" UNRESERVED, {}, 0,
	 SUITE_HDRS(), 2, EMPTY, "GET\n/" UNRESERVED "\n\n" SUITE_CANON_HD,
	 "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
	 "host;x-amz-date",
	 "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
	{"get-utf8", &suite_key, SUITE_TIME, "GET", "/\xe1\x88\xb4", {}, 0,
	 SUITE_HDRS(), 2, EMPTY, "GET\n/%E1%88%B4\n\n" SUITE_CANON_HD,
	 "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
	 "host;x-amz-date",
	 "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
	{"get-space", &suite_key, SUITE_TIME, "GET", "/example space/", {}, 0,
	 SUITE_HDRS(), 2, EMPTY, "GET\n/example%20space/\n\n" SUITE_CANON_HD,
	 "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
	 "host;x-amz-date",
	 "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
	/* The suite's request has "My-Header1: value1" and
	 * "My-Header2: \"a   b   c\""; extra outer blanks here exercise the
	 * trimming the suite requires without changing the canonical form. */
	{"get-header-value-trim", &suite_key, SUITE_TIME, "GET", "/", {}, 0,
	 SUITE_HDRS({"My-Header1", " \t value1  "},
	            {"My-Header2", "  \"a   b   c\" "}, ),
	 4, EMPTY,
	 "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
	 "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
	 "host;my-header1;my-header2;x-amz-date\n" EMPTY,
	 "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
	 "host;my-header1;my-header2;x-amz-date",
	 "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
	{"get-header-key-duplicate", &suite_key, SUITE_TIME, "GET", "/", {}, 0,
	 SUITE_HDRS({"My-Header1", "value2"}, {"My-Header1", "value2"},
	            {"My-Header1", "value1"}, ),
	 5, EMPTY,
	 "GET\n/\n\nhost:example.amazonaws.com\n"
	 "my-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\n"
	 "host;my-header1;x-amz-date\n" EMPTY,
	 "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
	 "host;my-header1;x-amz-date",
	 "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
	{"get-header-value-order", &suite_key, SUITE_TIME, "GET", "/", {}, 0,
	 SUITE_HDRS({"My-Header1", "value4"}, {"My-Header1", "value1"},
	            {"My-Header1", "value3"}, {"My-Header1", "value2"}, ),
	 6, EMPTY,
	 "GET\n/\n\nhost:example.amazonaws.com\n"
	 "my-header1:value4,value1,value3,value2\n"
	 "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" EMPTY,
	 "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
	 "host;my-header1;x-amz-date",
	 "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
	{"post-vanilla", &suite_key, SUITE_TIME, "POST", "/", {}, 0,
	 SUITE_HDRS(), 2, EMPTY, "POST\n/\n\n" SUITE_CANON_HD,
	 "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
	 "host;x-amz-date",
	 "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	{"post-vanilla-query", &suite_key, SUITE_TIME, "POST", "/",
	 {{"Param1", "value1"}}, 1, SUITE_HDRS(), 2, EMPTY,
	 "POST\n/\nParam1=value1\n" SUITE_CANON_HD,
	 "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
	 "host;x-amz-date",
	 "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
	{"post-header-key-sort", &suite_key, SUITE_TIME, "POST", "/", {}, 0,
	 SUITE_HDRS({"My-Header1", "value1"}, ), 3, EMPTY,
	 "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
	 "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" EMPTY,
	 "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
	 "host;my-header1;x-amz-date",
	 "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
	{"post-header-value-case", &suite_key, SUITE_TIME, "POST", "/", {}, 0,
	 SUITE_HDRS({"My-Header1", "VALUE1"}, ), 3, EMPTY,
	 "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\n"
	 "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" EMPTY,
	 "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
	 "host;my-header1;x-amz-date",
	 "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
	{"post-x-www-form-urlencoded", &suite_key, SUITE_TIME, "POST", "/", {},
	 0,
	 {{"Content-Type", "application/x-www-form-urlencoded"}, SUITE_HOST,
	  SUITE_DATE},
	 3, FORM_HASH,
	 "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
	 "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
	 "content-type;host;x-amz-date\n" FORM_HASH,
	 "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
	 "content-type;host;x-amz-date",
	 "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
	{"post-x-www-form-urlencoded-parameters", &suite_key, SUITE_TIME,
	 "POST", "/", {}, 0,
	 {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"},
	  SUITE_HOST, SUITE_DATE},
	 3, FORM_HASH,
	 "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; "
	 "charset=utf8\nhost:example.amazonaws.com\n"
	 "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
	 FORM_HASH,
	 "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
	 "content-type;host;x-amz-date",
	 "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},

	/* Amazon S3 API Reference examples. */
	{"s3 GET Object", &s3_key, S3_TIME, "GET", "/test.txt", {}, 0,
	 {{"Host", "examplebucket.s3.amazonaws.com"},
	  {"Range", "bytes=0-9"},
	  {"x-amz-content-sha256", EMPTY},
	  {"x-amz-date", "20130524T000000Z"}},
	 4, EMPTY,
	 "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
	 "range:bytes=0-9\nx-amz-content-sha256:" EMPTY "\n"
	 "x-amz-date:20130524T000000Z\n\n"
	 "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY,
	 "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
	 "host;range;x-amz-content-sha256;x-amz-date",
	 "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
	{"s3 PUT Object", &s3_key, S3_TIME, "PUT", "/test$file.text", {}, 0,
	 {{"Host", "examplebucket.s3.amazonaws.com"},
	  {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
	  {"x-amz-date", "20130524T000000Z"},
	  {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
	  {"x-amz-content-sha256", PUT_HASH}},
	 5, PUT_HASH,
	 "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
	 "host:examplebucket.s3.amazonaws.com\n"
	 "x-amz-content-sha256:" PUT_HASH "\n"
	 "x-amz-date:20130524T000000Z\n"
	 "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
	 "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
	 PUT_HASH,
	 "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
	 "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
	 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
	{"s3 GET Bucket Lifecycle", &s3_key, S3_TIME, "GET", "/",
	 {{"lifecycle", ""}}, 1,
	 {{"Host", "examplebucket.s3.amazonaws.com"},
	  {"x-amz-date", "20130524T000000Z"},
	  {"x-amz-content-sha256", EMPTY}},
	 3, EMPTY,
	 "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
	 "x-amz-content-sha256:" EMPTY "\nx-amz-date:20130524T000000Z\n\n"
	 "host;x-amz-content-sha256;x-amz-date\n" EMPTY,
	 "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
	 "host;x-amz-content-sha256;x-amz-date",
	 "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
	{"s3 Get Bucket (List Objects)", &s3_key, S3_TIME, "GET", "/",
	 {{"prefix", "J"}, {"max-keys", "2"}}, 2,
	 {{"Host", "examplebucket.s3.amazonaws.com"},
	  {"x-amz-date", "20130524T000000Z"},
	  {"x-amz-content-sha256", EMPTY}},
	 3, EMPTY,
	 "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
	 "x-amz-content-sha256:" EMPTY "\nx-amz-date:20130524T000000Z\n\n"
	 "host;x-amz-content-sha256;x-amz-date\n" EMPTY,
	 "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
	 "host;x-amz-content-sha256;x-amz-date",
	 "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
};
/* clang-format on */

static void
run_vector(const struct vector *v)
{
	struct mc_sigv4_request req = {
	        .method = v->method,
	        .path = v->path,
	        .query = v->query,
	        .query_count = v->query_count,
	        .headers = v->headers,
	        .header_count = v->header_count,
	        .payload_hash = v->payload_hash,
	};
	struct mc_sigv4_signature sig;
	const char *error = NULL;
	char date[MC_SIGV4_DATE_LEN + 1], *sts, *authz;
	int rv = mc_sigv4_sign(&req, v->key, v->when, &sig, &error);

	CHECK(rv == 0);
	if (rv != 0) {
		fprintf(stderr, "%s: %s\n", v->name, error);
		return;
	}
	mc_sigv4_format_date(v->when, date);
	sts = mc_asprintf("AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s",
	                  date, date, v->key->region, v->key->service,
	                  v->sts_hash);
	authz = mc_asprintf("AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/"
	                    "aws4_request, SignedHeaders=%s, Signature=%s",
	                    v->key->access_key_id, date, v->key->region,
	                    v->key->service, v->signed_headers, v->signature);
	CHECK_STR(sig.canonical_request, v->creq);
	CHECK_STR(sig.string_to_sign, sts);
	CHECK_STR(sig.signed_headers, v->signed_headers);
	CHECK_STR(sig.signature, v->signature);
	CHECK_STR(sig.authorization, authz);
	if (mc_test_failed)
		fprintf(stderr, "  (after vector %s)\n", v->name);
	free(sts);
	free(authz);
	mc_sigv4_signature_fini(&sig);
	mc_sigv4_signature_fini(&sig); /* twice is harmless */
}

/* Sign get-vanilla with one field changed; expect a refusal. */
static void
expect_refused(const char *what, const char *method, const char *path,
               const struct mc_sigv4_pair *headers, size_t header_count,
               const char *payload_hash, const struct mc_sigv4_key *key,
               time_t when)
{
	struct mc_sigv4_request req = {
	        .method = method,
	        .path = path,
	        .headers = headers,
	        .header_count = header_count,
	        .payload_hash = payload_hash,
	};
	struct mc_sigv4_signature sig;
	const char *error = NULL;
	int rv = mc_sigv4_sign(&req, key, when, &sig, &error);

	CHECK(rv == -1);
	CHECK(error != NULL && *error != '\0');
	CHECK(sig.authorization == NULL && sig.canonical_request == NULL);
	if (rv != -1)
		fprintf(stderr, "accepted: %s\n", what);
	mc_sigv4_signature_fini(&sig);
}

static void
test_refusals(void)
{
	const struct mc_sigv4_pair good[] = {SUITE_HOST, SUITE_DATE};
	const struct mc_sigv4_pair no_date[] = {SUITE_HOST};
	const struct mc_sigv4_pair crlf[] = {
	        SUITE_HOST, SUITE_DATE, {"X-Evil", "a\r\nInjected: 1"}};
	const struct mc_sigv4_pair bad_name[] = {
	        SUITE_HOST, SUITE_DATE, {"Bad Name", "v"}};
	const struct mc_sigv4_pair colon_name[] = {
	        SUITE_HOST, SUITE_DATE, {"a:b", "v"}};
	struct mc_sigv4_key slash_key = suite_key;
	struct mc_sigv4_key space_region = suite_key;
	struct mc_sigv4_pair many[MC_SIGV4_MAX_HEADERS + 1];

	slash_key.access_key_id = "AKID/EXAMPLE";
	space_region.region = "us east 1";
	for (size_t i = 0; i < MC_SIGV4_MAX_HEADERS + 1; i++)
		many[i] = (struct mc_sigv4_pair)SUITE_DATE;

	expect_refused("no x-amz-date", "GET", "/", no_date, 1, EMPTY,
	               &suite_key, SUITE_TIME);
	expect_refused("x-amz-date of another time", "GET", "/", good, 2, EMPTY,
	               &suite_key, SUITE_TIME + 1);
	expect_refused("CR LF in a value", "GET", "/", crlf, 3, EMPTY,
	               &suite_key, SUITE_TIME);
	expect_refused("space in a name", "GET", "/", bad_name, 3, EMPTY,
	               &suite_key, SUITE_TIME);
	expect_refused("colon in a name", "GET", "/", colon_name, 3, EMPTY,
	               &suite_key, SUITE_TIME);
	expect_refused(
	        "upper-case payload hash", "GET", "/", good, 2,
	        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B"
	        "7852B855",
	        &suite_key, SUITE_TIME);
	expect_refused("short payload hash", "GET", "/", good, 2, "e3b0",
	               &suite_key, SUITE_TIME);
	expect_refused("NULL payload hash", "GET", "/", good, 2, NULL,
	               &suite_key, SUITE_TIME);
	expect_refused("relative path", "GET", "x", good, 2, EMPTY, &suite_key,
	               SUITE_TIME);
	expect_refused("method with a space", "GE T", "/", good, 2, EMPTY,
	               &suite_key, SUITE_TIME);
	expect_refused("slash in the access key id", "GET", "/", good, 2, EMPTY,
	               &slash_key, SUITE_TIME);
	expect_refused("spaces in the region", "GET", "/", good, 2, EMPTY,
	               &space_region, SUITE_TIME);
	expect_refused("too many headers", "GET", "/", many,
	               MC_SIGV4_MAX_HEADERS + 1, EMPTY, &suite_key, SUITE_TIME);
}

static void
test_helpers(void)
{
	char date[MC_SIGV4_DATE_LEN + 1], hex[MC_SIGV4_HEX_LEN + 1];
	char *enc;

	mc_sigv4_format_date(SUITE_TIME, date);
	CHECK_STR(date, "20150830T123600Z");
	mc_sigv4_format_date(S3_TIME, date);
	CHECK_STR(date, "20130524T000000Z");
	mc_sigv4_sha256_hex("", 0, hex);
	CHECK_STR(hex, EMPTY);
	mc_sigv4_sha256_hex("Welcome to Amazon S3.", 21, hex);
	CHECK_STR(hex, PUT_HASH);
	enc = mc_sigv4_uri_encode("/test$file.text", true);
	CHECK_STR(enc, "/test%24file.text");
	free(enc);
	enc = mc_sigv4_uri_encode("a/b c", false);
	CHECK_STR(enc, "a%2Fb%20c");
	free(enc);
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
		run_vector(&vectors[i]);
	test_refusals();
	test_helpers();
	return mc_test_done();
}
