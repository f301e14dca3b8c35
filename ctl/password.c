/* mailctl password input and hashing. A password never comes from argv
 * (it would show in ps and shell history): it is the first line of stdin
 * when stdin is not a terminal, or typed twice at a prompt with echo off.
 * Only its argon2id hash and its SCRAM-SHA-256 verifier leave this file;
 * the clear text lives in stack buffers that are wiped before returning.
 *
 * Input is read one byte at a time with read(2) rather than stdio so no
 * copy of the password stays behind in a stdio buffer. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <argon2.h>
#include <openssl/rand.h>

#include "error.h"
#include "mem.h"
#include "scram.h"

/* OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane. */
#define CLI_ARGON2_T 2
#define CLI_ARGON2_M_KIB 19456
#define CLI_ARGON2_P 1
#define CLI_ARGON2_SALT 16
#define CLI_ARGON2_HASH 32

/* Terminal state to restore if a signal arrives while echo is off. */
static struct termios cli_saved_termios;
static volatile sig_atomic_t cli_termios_saved;

int
cli_password_read_line(int fd, char *buf, size_t size, size_t *len_r,
                       const char **error_r)
{
	size_t len = 0;
	bool eol = false;
	char c;

	/* One byte of slack for a '\r' before the newline. */
	if (size < CLI_PASSWORD_MAX + 2)
		abort();
	while (!eol) {
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = mc_errorf("reading the password: %s",
			                     strerror(errno));
			goto fail;
		}
		if (n == 0 || c == '\n') {
			eol = true;
		} else if (len == CLI_PASSWORD_MAX + 1) {
			*error_r = mc_errorf("password is longer than %u bytes",
			                     CLI_PASSWORD_MAX);
			goto fail;
		} else {
			buf[len++] = c;
		}
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > CLI_PASSWORD_MAX) {
		*error_r = mc_errorf("password is longer than %u bytes",
		                     CLI_PASSWORD_MAX);
		goto fail;
	}
	if (len == 0) {
		*error_r = "empty password";
		goto fail;
	}
	if (memchr(buf, '\0', len) != NULL) {
		*error_r = "password contains a NUL byte";
		goto fail;
	}
	buf[len] = '\0';
	*len_r = len;
	return 0;
fail:
	mc_wipe(buf, size);
	mc_wipe(&c, sizeof(c));
	return -1;
}

int
cli_password_hash(const char *password, size_t len, char **hash_r,
                  const char **error_r)
{
	unsigned char salt[CLI_ARGON2_SALT];
	size_t enclen =
	        argon2_encodedlen(CLI_ARGON2_T, CLI_ARGON2_M_KIB, CLI_ARGON2_P,
	                          CLI_ARGON2_SALT, CLI_ARGON2_HASH, Argon2_id);
	char *encoded = mc_malloc(enclen);
	int rc;

	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		*error_r = "cannot get random bytes for the salt";
		goto fail;
	}
	rc = argon2id_hash_encoded(CLI_ARGON2_T, CLI_ARGON2_M_KIB, CLI_ARGON2_P,
	                           password, len, salt, sizeof(salt),
	                           CLI_ARGON2_HASH, encoded, enclen);
	if (rc != ARGON2_OK) {
		*error_r = mc_errorf("argon2id: %s", argon2_error_message(rc));
		goto fail;
	}
	*hash_r = encoded;
	return 0;
fail:
	free(encoded);
	return -1;
}

int
cli_password_scram(const char *password, size_t len, char **verifier_r,
                   const char **error_r)
{
	*verifier_r = NULL;
	/* mc_scram takes printable ASCII only (no SASLprep): any other
	 * password gets no verifier rather than one clients might not
	 * match. */
	for (size_t i = 0; i < len; i++)
		if (password[i] < 0x20 || password[i] > 0x7e)
			return 0;
	return mc_scram_verifier_new(password, len, MC_SCRAM_ITERATIONS,
	                             verifier_r, error_r);
}

static void
restore_on_signal(int sig)
{
	if (cli_termios_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &cli_saved_termios);
	(void)!write(STDERR_FILENO, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Prompt on stderr and read a line from the terminal on stdin, echo off. */
static int
prompt_line(const char *prompt, char *buf, size_t size, size_t *len_r,
            const char **error_r)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
	struct sigaction sa, old[5];
	struct termios noecho;
	int ret;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &cli_saved_termios) < 0) {
		*error_r = mc_errorf("terminal: %s", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_on_signal;
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &sa, &old[i]);
	cli_termios_saved = 1;
	noecho = cli_saved_termios;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	ret = cli_password_read_line(STDIN_FILENO, buf, size, len_r, error_r);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &cli_saved_termios);
	cli_termios_saved = 0;
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &old[i], NULL);
	return ret;
}

static int
prompt_twice(char *buf, size_t size, size_t *len_r, const char **error_r)
{
	char again[CLI_PASSWORD_MAX + 2];
	size_t len2;
	int ret = -1;

	if (prompt_line("New password: ", buf, size, len_r, error_r) < 0)
		return -1;
	if (prompt_line("Retype new password: ", again, sizeof(again), &len2,
	                error_r) < 0)
		goto out;
	if (len2 != *len_r || memcmp(buf, again, len2) != 0) {
		*error_r = "the two passwords do not match";
		goto out;
	}
	ret = 0;
out:
	mc_wipe(again, sizeof(again));
	if (ret < 0)
		mc_wipe(buf, size);
	return ret;
}

int
cli_password_new_hash(char **hash_r, char **scram_r, const char **error_r)
{
	char buf[CLI_PASSWORD_MAX + 2];
	size_t len;
	int ret;

	*hash_r = *scram_r = NULL;
	if (isatty(STDIN_FILENO))
		ret = prompt_twice(buf, sizeof(buf), &len, error_r);
	else
		ret = cli_password_read_line(STDIN_FILENO, buf, sizeof(buf),
		                             &len, error_r);
	if (ret == 0)
		ret = cli_password_hash(buf, len, hash_r, error_r);
	if (ret == 0)
		ret = cli_password_scram(buf, len, scram_r, error_r);
	mc_wipe(buf, sizeof(buf));
	if (ret < 0 && *hash_r != NULL) {
		mc_wipe(*hash_r, strlen(*hash_r));
		free(*hash_r);
		*hash_r = NULL;
	}
	if (ret == 0 && *scram_r == NULL)
		fputs("mailctl: warning: the password is not printable ASCII, "
		      "so it gets no SCRAM-SHA-256 verifier: the account can "
		      "log in with PLAIN only\n",
		      stderr);
	return ret;
}
