"""The reference system of the benchmark: a private Postfix MX that
delivers over LMTP to a private Dovecot (maildir), on loopback only.

Nothing of the system's own Postfix or Dovecot is used or touched besides
the binaries and Debian's /etc/postfix/master.cf, which is read as the
template of ours. Everything lives in one folder (WORK):

    WORK/postfix/etc      config_directory: main.cf, master.cf, vmailbox
    WORK/postfix/spool    queue_directory (owned as `postfix set-permissions` wants)
    WORK/postfix/data     data_directory
    WORK/dovecot/         dovecot.conf, users (passwd-file), run/ (base_dir),
                          state/, home/<domain>/<user>/Maildir
    WORK/log/             postfix.log (maillog_file), dovecot.log

Settings that differ from the packages' defaults, and why:
  - Postfix: inet_interfaces = 127.0.0.1, smtpd on 127.0.0.1:SMTP_PORT,
    no chroot (a private queue directory has no chroot jail set up),
    virtual_mailbox_domains = bench.test with the accounts listed in
    virtual_mailbox_maps (texthash:, so unknown users are refused at RCPT,
    as our relay does), virtual_transport = lmtp:inet:127.0.0.1:LMTP_PORT,
    maillog_file instead of syslog (no syslog here), no pipe(8) services.
    Everything else (queue fsync before 250, process limits, in_flow_delay,
    concurrency) is Postfix's default.
  - Dovecot: listen = 127.0.0.1, an imaps (implicit TLS, a self-signed
    certificate made here with openssl, EC P-256 like ours) and an lmtp
    inet listener on loopback ports: IMAP is measured over TLS on both
    sides, as our nodes serve it; passdb
    passwd-file with {PLAIN} passwords, userdb static (the `vmail` user),
    mail_location = maildir:~/Maildir. mail_fsync stays at its default
    (optimized: a delivered message is fsynced before LMTP's 250).

Used as a module by bench.py (Theirs) and as a command for the clean-up
trap of bench/run:  theirs.py stop WORK
"""

import os
import pwd
import grp
import shutil
import signal
import subprocess
import sys
import time

POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
VMAIL = "vmail"


def log(msg):
    print(msg, flush=True)


def ensure_vmail():
    """The owner of the maildirs: the conventional `vmail` system user,
    created (no home, no shell) when missing."""
    try:
        pw = pwd.getpwnam(VMAIL)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        VMAIL], check=True)
        pw = pwd.getpwnam(VMAIL)
    return pw.pw_uid, pw.pw_gid


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid):
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


class Theirs:
    def __init__(self, work, smtp_port, imap_port, lmtp_port, domain="bench.test"):
        self.work = os.path.abspath(work)
        self.smtp_port = smtp_port
        self.imap_port = imap_port
        self.lmtp_port = lmtp_port
        self.domain = domain
        self.pf_etc = os.path.join(self.work, "postfix", "etc")
        self.pf_spool = os.path.join(self.work, "postfix", "spool")
        self.pf_data = os.path.join(self.work, "postfix", "data")
        self.dv = os.path.join(self.work, "dovecot")
        self.dv_conf = os.path.join(self.dv, "dovecot.conf")
        self.dv_run = os.path.join(self.dv, "run")
        self.logdir = os.path.join(self.work, "log")
        self.users = {}

    # ---- configuration ----

    def setup(self, users):
        """users: {address: password}. Writes every config."""
        self.users = dict(users)
        uid, gid = ensure_vmail()
        for d in (self.pf_etc, self.pf_spool, self.pf_data, self.dv_run,
                  os.path.join(self.dv, "state"), os.path.join(self.dv, "home"),
                  self.logdir):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.work, 0o755)
        os.chown(os.path.join(self.dv, "home"), uid, gid)
        self._certificate()
        self._postfix_config()
        self._dovecot_config(uid, gid)

    def _certificate(self):
        """Dovecot's self-signed IMAPS certificate (EC P-256)."""
        crt = os.path.join(self.dv, "tls.crt")
        key = os.path.join(self.dv, "tls.key")
        if os.path.exists(crt) and os.path.exists(key):
            return
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "30", "-subj", "/CN=127.0.0.1",
                        "-keyout", key, "-out", crt],
                       check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(key, 0o600)

    def _postfix_config(self):
        main = """\
# Private Postfix instance of the mail-cluster benchmark (bench/theirs.py).
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{domain}
mydomain = {domain}
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
virtual_mailbox_domains = {domain}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
smtpd_banner = $myhostname ESMTP
biff = no
maillog_file = {log}/postfix.log
""".format(etc=self.pf_etc, spool=self.pf_spool, data=self.pf_data,
           domain=self.domain, lmtp=self.lmtp_port, log=self.logdir)
        with open(os.path.join(self.pf_etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.pf_etc, "vmailbox"), "w") as f:
            for addr in sorted(self.users):
                f.write("%s OK\n" % addr)
        with open(os.path.join(self.pf_etc, "master.cf"), "w") as f:
            f.write(self._master_cf())

    def _master_cf(self):
        """Debian's master.cf with chroot off, smtpd on our loopback port
        and the pipe(8) services (maildrop, uucp...) left out."""
        with open("/etc/postfix/master.cf") as f:
            lines = f.read().splitlines()
        out = ["# From /etc/postfix/master.cf, rewritten by bench/theirs.py"]
        skip = False
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace():  # continuation of the entry above
                if not skip:
                    out.append(line)
                continue
            f = line.split()
            if len(f) < 8:
                continue
            skip = f[7] == "pipe"
            if skip:
                continue
            if f[0] == "smtp" and f[1] == "inet":
                f[0] = "127.0.0.1:%d" % self.smtp_port
            f[4] = "n"  # chroot
            out.append("%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s"
                       % tuple(f[:7] + [" ".join(f[7:])]))
        return "\n".join(out) + "\n"

    def _dovecot_config(self, uid, gid):
        with open(os.path.join(self.dv, "users"), "w") as f:
            for addr, pw in sorted(self.users.items()):
                f.write("%s:{PLAIN}%s::::::\n" % (addr, pw))
        os.chmod(os.path.join(self.dv, "users"), 0o640)
        os.chown(os.path.join(self.dv, "users"), 0, grp.getgrnam("dovecot").gr_gid)
        conf = """\
# Private Dovecot of the mail-cluster benchmark (bench/theirs.py).
# IMAP over implicit TLS (as our nodes are measured), LMTP in clear text.
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {run}
state_dir = {state}
log_path = {log}/dovecot.log
info_log_path = {log}/dovecot.log
ssl = required
ssl_cert = <{dv}/tls.crt
ssl_key = <{dv}/tls.key
auth_mechanisms = plain login
first_valid_uid = {uid}
first_valid_gid = {gid}
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dv}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dv}/home/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imap}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
""".format(run=self.dv_run, state=os.path.join(self.dv, "state"),
           log=self.logdir, uid=uid, gid=gid, dv=self.dv,
           imap=self.imap_port, lmtp=self.lmtp_port)
        with open(self.dv_conf, "w") as f:
            f.write(conf)

    # ---- lifecycle ----

    def start(self):
        # The master daemonises; its children must not inherit a pipe.
        out = os.path.join(self.logdir, "dovecot-start.log")
        with open(out, "w") as f:
            rc = subprocess.run([DOVECOT, "-c", self.dv_conf], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=subprocess.STDOUT, timeout=60).returncode
        if rc != 0:
            with open(out) as f:
                raise RuntimeError("dovecot did not start: %s" % f.read())
        p = subprocess.run([POSTFIX, "-c", self.pf_etc, "set-permissions"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("postfix set-permissions: %s" % p.stdout)
        p = subprocess.run([POSTFIX, "-c", self.pf_etc, "start"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("postfix did not start: %s" % p.stdout)
        log("theirs: postfix master pid %s, dovecot master pid %s"
            % (self.postfix_pid(), self.dovecot_pid()))

    def postfix_pid(self):
        pid = read_pid(os.path.join(self.pf_spool, "pid", "master.pid"))
        return pid if pid_alive(pid) and comm(pid) == "master" else None

    def dovecot_pid(self):
        pid = read_pid(os.path.join(self.dv_run, "master.pid"))
        return pid if pid_alive(pid) and comm(pid) == "dovecot" else None

    def master_pids(self):
        return [p for p in (self.postfix_pid(), self.dovecot_pid()) if p]

    def stop(self):
        """Stop both, by the PIDs in their own pid files (each checked to
        still be a Postfix master / Dovecot master). Idempotent."""
        if os.path.exists(os.path.join(self.pf_etc, "main.cf")) and self.postfix_pid():
            subprocess.run([POSTFIX, "-c", self.pf_etc, "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60)
        if os.path.exists(self.dv_conf) and self.dovecot_pid():
            subprocess.run([DOVEADM, "-c", self.dv_conf, "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.master_pids():
            time.sleep(0.1)
        for pid in self.master_pids():  # did not listen: by PID, checked above
            log("theirs: killing pid %d (%s)" % (pid, cmdline(pid)))
            os.kill(pid, signal.SIGKILL)


def from_work(work):
    """A Theirs for an existing WORK (ports do not matter for stop)."""
    return Theirs(work, 0, 0, 0)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "stop":
        if os.path.isdir(sys.argv[2]):
            from_work(sys.argv[2]).stop()
        sys.exit(0)
    print("usage: theirs.py stop WORK", file=sys.stderr)
    sys.exit(2)
