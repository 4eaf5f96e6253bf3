/*
 * harness.c - integration-test fixtures (see harness.h).
 *
 * Processes are started with fork/exec and stopped with signals; readiness
 * is always polled with a deadline, never slept for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <limits.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>

#include "codec.h"
#include "loadgen.h"
#include "proc.h"
#include "common.h"
#include "harness.h"
#include "history.h"
#include "proto.h"
#include "schemas_gen.h"
#include "store.h"

static char tmpdir[256];

static void cleanup_tmpdir(void) {
    char cmd[300];
    if (!tmpdir[0] || getenv("TD_KEEP_TMP")) return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", tmpdir);
}

const char *td_h_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/td-test.XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(cleanup_tmpdir);
    }
    return tmpdir;
}

const char *td_h_bin(const char *name) {
    static char path[512];
    const char *dir = getenv("TD_BIN");
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "build", name);
    return path;
}

int td_h_free_port(void) {
    return td_proc_free_port();
}

static int64_t mono_ms(void) {
    return td_mono_ms();
}

static void short_nap(void) {
    /* The polling period of td_h_poll: a wait between checks, not a
     * synchronisation. */
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
}

int td_h_poll(int (*cond)(void *arg), void *arg, int timeout_ms) {
    int64_t deadline = mono_ms() + timeout_ms;
    int r;
    while (!(r = cond(arg)) && mono_ms() < deadline)
        short_nap();
    return r;
}

int td_h_spawn(td_h_proc_t *p, const char *tag, char *const argv[]) {
    static int seq;

    snprintf(p->log, sizeof(p->log), "%s/%s.%d.log", td_h_tmpdir(), tag, seq++);
    /* Dies with the test: a failed assertion skips the test's own cleanup,
     * and its processes must not outlive the test binary. */
    p->pid = td_proc_spawn(argv, p->log);
    return p->pid < 0 ? -1 : 0;
}

int td_h_wait(td_h_proc_t *p, int timeout_ms) {
    int status = td_proc_wait(p->pid, timeout_ms);
    if (status != -1) p->pid = 0;
    return status;
}

void td_h_signal(td_h_proc_t *p, int sig) {
    if (p->pid > 0) kill(p->pid, sig);
}

void td_h_stop_graceful(td_h_proc_t *p, int timeout_ms) {
    int status;
    td_h_signal(p, SIGTERM);
    status = td_h_wait(p, timeout_ms);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        td_h_dump_log(p);
        fail_msg("%s did not exit 0 after SIGTERM (status %d)", p->log, status);
    }
}

void td_h_dump_log(const td_h_proc_t *p) {
    char cmd[600];
    fprintf(stderr, "---- last lines of %s ----\n", p->log);
    snprintf(cmd, sizeof(cmd), "tail -n 40 '%s' >&2", p->log);
    if (system(cmd) != 0) fprintf(stderr, "(no log)\n");
}

/* ---- HTTP and Prometheus ---- */

#define HTTP_BODY_MAX (1 << 20)

/* One request on a fresh connection: method, path and an optional extra
 * header line; returns the status (-1 on failure), *body the body
 * (caller frees). */
int td_h_http(int p,
              const char *method,
              const char *path,
              const char *header,
              char **body) {
    struct sockaddr_in sin;
    struct timeval tv = {10, 0};
    char *req, *buf = malloc(HTTP_BODY_MAX + 1), *sep;
    size_t len = 0, rlen = strlen(path) + 256 + (header ? strlen(header) : 0);
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;

    *body = NULL;
    req = malloc(rlen);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)p);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (fd < 0 || !buf || !req ||
        connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        goto out;
    n = snprintf(req, rlen,
                 "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%sContent-Length: "
                 "0\r\n\r\n",
                 method, path, header ? header : "", header ? "\r\n" : "");
    if (write(fd, req, (size_t)n) != n) goto out;
    while (len < HTTP_BODY_MAX &&
           (n = read(fd, buf + len, HTTP_BODY_MAX - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        status = -1;
        goto out;
    }
    sep = strstr(buf, "\r\n\r\n");
    *body = strdup(sep ? sep + 4 : "");
out:
    if (fd >= 0) close(fd);
    free(buf);
    free(req);
    return status;
}

int td_h_http_get(int port, const char *path, char **body) {
    return td_h_http(port, "GET", path, NULL, body);
}

double td_h_sample(const char *body, const char *series) {
    size_t len = strlen(series);
    for (const char *p = body; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (!strncmp(p, series, len) && p[len] == ' ')
            return strtod(p + len + 1, NULL);
    }
    return NAN;
}

double td_h_metric(int port, const char *series) {
    char *body;
    double v = td_h_http_get(port, "/metrics", &body) == 200
                   ? td_h_sample(body, series)
                   : NAN;
    free(body);
    return v;
}

/* ---- redis ---- */

static int redis_ping(void *arg) {
    td_h_redis_t *r = arg;
    redisContext *c = td_h_redis_connect(r);
    redisReply *rep;
    int ok = 0;
    if (!c) return 0;
    rep = redisCommand(c, "PING");
    /* While loading the AOF Redis answers -LOADING. */
    ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep) freeReplyObject(rep);
    redisFree(c);
    return ok;
}

const char *td_h_module(void) {
    static char path[PATH_MAX + 32];
    char exe[PATH_MAX], *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0) return NULL;
    exe[n] = '\0';
    for (int i = 0; i < 2; i++) { /* <build>/tests/<binary> */
        slash = strrchr(exe, '/');
        if (!slash) return NULL;
        *slash = '\0';
    }
    snprintf(path, sizeof(path), "%s/trustd_module.so", exe);
    return access(path, R_OK) == 0 ? path : NULL;
}

int td_h_lua_path(void) {
    const char *p = getenv("TD_REDIS_PATH");
    return p && !strcmp(p, "lua");
}

static int redis_spawn(td_h_redis_t *r, const char *const *extra) {
    char port[16];
    char *argv[64];
    int n = 0;

    snprintf(port, sizeof(port), "%d", r->port);
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "yes";
    argv[n++] = "--appendfsync";
    argv[n++] = "always";
    /* Deep checks of every RESTORE payload: trustd builds its own. */
    argv[n++] = "--sanitize-dump-payload";
    argv[n++] = "yes";
    int own = 0; /* the caller loads the module itself */
    for (int i = 0; extra && extra[i]; i++)
        own |= !strcmp(extra[i], "--loadmodule");
    if (!own && !td_h_lua_path() && td_h_module()) {
        argv[n++] = "--loadmodule";
        argv[n++] = (char *)td_h_module();
    }
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    if (td_h_spawn(&r->proc, "redis", argv) != 0) return -1;
    if (!td_h_poll(redis_ping, r, 15000)) {
        td_h_dump_log(&r->proc);
        return -1;
    }
    return 0;
}

int td_h_redis_start(td_h_redis_t *r, const char *const *extra) {
    static int seq;
    memset(r, 0, sizeof(*r));
    r->port = td_h_free_port();
    snprintf(r->dir, sizeof(r->dir), "%s/redis%d", td_h_tmpdir(), seq++);
    mkdir(r->dir, 0755);
    snprintf(r->addr, sizeof(r->addr), "127.0.0.1:%d", r->port);
    return redis_spawn(r, extra);
}

int td_h_redis_restart(td_h_redis_t *r) {
    return redis_spawn(r, NULL);
}

void td_h_redis_stop(td_h_redis_t *r) {
    td_h_signal(&r->proc, SIGTERM);
    if (td_h_wait(&r->proc, 10000) == -1) {
        td_h_signal(&r->proc, SIGKILL);
        td_h_wait(&r->proc, 5000);
    }
}

void td_h_redis_kill(td_h_redis_t *r) {
    td_h_signal(&r->proc, SIGKILL);
    td_h_wait(&r->proc, 5000);
}

redisContext *td_h_redis_connect(const td_h_redis_t *r) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

int td_h_hget_double(redisContext *c,
                     const char *key,
                     const char *field,
                     double *out) {
    redisReply *r = redisCommand(c, "HGET %s %s", key, field);
    int rc = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        *out = strtod(r->str, NULL);
        rc = 0;
    }
    if (r) freeReplyObject(r);
    return rc;
}

/* ---- embedded kafka ---- */

int td_h_kafka_apache(void) {
    const char *e = getenv("TD_KAFKA");
    return e && !strcmp(e, "apache");
}

void td_h_kafka_mock_only(const td_h_kafka_t *k, const char *why) {
    if (!k->real) return;
    print_message("[  MOCK ONLY ] %s: not on a real broker\n", why);
    skip();
}

int td_h_kafka_start(td_h_kafka_t *k, const char *const *args) {
    int in[2], out[2];
    char *argv[40];
    int n = 0;
    char dir[300];
    static int seq;

    memset(k, 0, sizeof(*k));
    if (pipe(in) || pipe(out)) return -1;
    snprintf(k->log, sizeof(k->log), "%s/td-kafka.%d.log", td_h_tmpdir(), seq);
    snprintf(dir, sizeof(dir), "%s/kafka%d", td_h_tmpdir(), seq++);
    argv[n++] = (char *)td_h_bin("td-kafka");
    if (td_h_kafka_apache()) {
        /* The same topics on a real broker: td-kafka runs it. */
        k->real = 1;
        argv[n++] = "--apache";
        argv[n++] = "--dir";
        argv[n++] = dir;
    }
    for (int i = 0; args && args[i] && n < 38; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    k->pid = fork();
    if (k->pid < 0) return -1;
    if (k->pid == 0) {
        int fd = open(k->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        /* Dies with the test, and its brokers with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (fd >= 0) dup2(fd, 2);
        close(in[1]);
        close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    k->in_fd = in[1];
    k->out = fdopen(out[0], "r");
    if (k->out && fgets(k->bootstrap, sizeof(k->bootstrap), k->out))
        k->bootstrap[strcspn(k->bootstrap, "\r\n")] = '\0';
    if (!k->bootstrap[0]) {
        /* Why, e.g. the jars were not fetched, is in its log. */
        td_h_proc_t p = {.pid = k->pid};
        snprintf(p.log, sizeof(p.log), "%s", k->log);
        td_h_dump_log(&p);
        return -1;
    }
    return 0;
}

int td_h_kafka_query(td_h_kafka_t *k, const char *cmd, char *out, size_t size) {
    char line[512];
    size_t len = strlen(cmd);
    if (write(k->in_fd, cmd, len) != (ssize_t)len ||
        write(k->in_fd, "\n", 1) != 1 || !fgets(line, sizeof(line), k->out))
        return -1;
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, "ok", 2) != 0) {
        fprintf(stderr, "td-kafka %s: %s\n", cmd, line);
        return -1;
    }
    snprintf(out, size, "%s", line[2] == ' ' ? line + 3 : "");
    return 0;
}

int td_h_kafka_cmd(td_h_kafka_t *k, const char *cmd) {
    char answer[128];
    return td_h_kafka_query(k, cmd, answer, sizeof(answer));
}

void td_h_kafka_stop(td_h_kafka_t *k) {
    td_h_proc_t p = {.pid = k->pid};
    if (k->pid <= 0) return;
    kill(k->pid, SIGTERM);
    if (td_h_wait(&p, 10000) == -1) {
        kill(k->pid, SIGKILL);
        td_h_wait(&p, 5000);
    }
    close(k->in_fd);
    if (k->out) fclose(k->out);
    k->pid = 0;
}

/* ---- trustd ---- */

int td_h_log_has(const td_h_proc_t *p, const char *needle) {
    FILE *fp = fopen(p->log, "r");
    char *line = NULL;
    size_t cap = 0;
    int found = 0;

    if (!fp) return 0;
    while (!found && getline(&line, &cap, fp) >= 0)
        found = strstr(line, needle) != NULL;
    free(line);
    fclose(fp);
    return found;
}

/* Has trustd logged its first line, or exited (a test of a bad setting)? */
static int trustd_started(void *arg) {
    td_h_proc_t *p = arg;
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        si.si_pid == p->pid)
        return 1;
    return td_h_log_has(p, "trustd starting");
}

int td_h_trustd_start(td_h_proc_t *p,
                      const char *tag,
                      const td_h_kafka_t *k,
                      const td_h_redis_t *r,
                      const char *group,
                      const char *const *extra) {
    char *argv[64];
    int n = 0;

    argv[n++] = (char *)td_h_bin("trustd");
    argv[n++] = "--brokers";
    argv[n++] = (char *)k->bootstrap;
    argv[n++] = "--redis";
    argv[n++] = (char *)r->addr;
    argv[n++] = "--group";
    argv[n++] = (char *)group;
    argv[n++] = "--flush-interval-ms";
    argv[n++] = "100";
    argv[n++] = "--http-port";
    argv[n++] = "0";
    argv[n++] = "--log-level";
    argv[n++] = "verbose";
    argv[n++] = "-X";
    argv[n++] = "session.timeout.ms=6000";
    argv[n++] = "-X";
    argv[n++] = "heartbeat.interval.ms=500";
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    if (td_h_spawn(p, tag, argv)) return -1;
    /* Its first line comes after its signal handlers are in place: a test
     * that stops it at once must not kill it before it can shut down. */
    td_h_poll(trustd_started, p, 15000);
    return 0;
}

/* ---- schema registry ---- */

const char *td_h_schema_json(const char *file) {
    for (size_t i = 0; i < td_schema_src_cnt; i++) {
        if (!strcmp(td_schema_srcs[i].file, file))
            return td_schema_srcs[i].json;
    }
    return NULL;
}

#define REVIEW_HEAD                                                            \
    "{\"type\":\"record\",\"name\":\"ReviewEvent\",\"namespace\":"             \
    "\"trustindex\",\"fields\":["                                              \
    "{\"name\":\"event_id\",\"type\":\"string\"},"                             \
    "{\"name\":\"event_time\",\"type\":\"long\"},"                             \
    "{\"name\":\"merchant_id\",\"type\":\"string\"},"                          \
    "{\"name\":\"order_id\",\"type\":\"string\"},"                             \
    "{\"name\":\"buyer_id\",\"type\":\"string\"},"

const char td_h_own_review_json[] = REVIEW_HEAD
    "{\"name\":\"rating\",\"type\":\"int\"},"
    "{\"name\":\"has_media\",\"type\":\"boolean\",\"default\":false}]}";
const char td_h_bad_review_json[] =
    REVIEW_HEAD "{\"name\":\"rating\",\"type\":\"string\"}]}";

#define APICURIO_JAR "apicurio-registry-app-2.6.13.Final-runner.jar"

/* body (malloc'd, NUL-terminated) of an HTTP request, or NULL; *status
 * gets the HTTP status. POST when post is not NULL. */
static size_t h_body(char *p, size_t size, size_t n, void *opaque) {
    char **b = opaque;
    size_t old = *b ? strlen(*b) : 0, len = size * n;
    char *nb = realloc(*b, old + len + 1);

    if (!nb) return 0;
    memcpy(nb + old, p, len);
    nb[old + len] = '\0';
    *b = nb;
    return len;
}

static char *h_http(const char *url, const char *post, long *status) {
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char *body = NULL;
    CURLcode cc;

    *status = 0;
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (post) {
        hdr = curl_slist_append(
            hdr, "Content-Type: application/vnd.schemaregistry.v1+json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    }
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        free(body);
        return NULL;
    }
    return body ? body : strdup("");
}

static int registry_up(void *arg) {
    const td_h_registry_t *r = arg;
    char url[256];
    long status;
    char *b;

    snprintf(url, sizeof(url), "%s/subjects", r->url);
    b = h_http(url, NULL, &status);
    free(b);
    return b && status == 200;
}

/* The jar's path, fetching it with Maven when it is not there yet. */
static int registry_jar(char *jar, size_t size) {
    char dir[512], abs[PATH_MAX], cmd[PATH_MAX + 1024];
    const char *bin = getenv("TD_BIN");

    snprintf(dir, sizeof(dir), "%s/registry", bin && *bin ? bin : "build");
    snprintf(jar, size, "%s/%s", dir, APICURIO_JAR);
    if (access(jar, R_OK) == 0) return 0;
    /* Maven wants an absolute output directory. */
    mkdir(dir, 0755);
    if (!realpath(dir, abs)) return -1;
    snprintf(cmd, sizeof(cmd),
             "mvn -q -B -f tests/registry/pom.xml -DoutputDirectory=%s "
             "dependency:unpack >%s/mvn.log 2>&1",
             abs, td_h_tmpdir());
    if (system(cmd) != 0 || access(jar, R_OK) != 0) {
        fprintf(stderr,
                "harness: cannot fetch Apicurio Registry from Maven Central "
                "(%s; log in %s/mvn.log): the schema registry tests need it\n",
                cmd, td_h_tmpdir());
        return -1;
    }
    return 0;
}

static int registry_spawn(td_h_registry_t *r) {
    char jar[600], port[64];
    char *argv[] = {"java",
                    "-Xmx256m",
                    "-XX:TieredStopAtLevel=1",
                    "-Dquarkus.http.host=127.0.0.1",
                    port,
                    "-jar",
                    jar,
                    NULL};

    if (registry_jar(jar, sizeof(jar)) != 0) return -1;
    snprintf(port, sizeof(port), "-Dquarkus.http.port=%d", r->port);
    if (td_h_spawn(&r->proc, "registry", argv) != 0) return -1;
    if (!td_h_poll(registry_up, r, 60000)) {
        fprintf(stderr, "harness: Apicurio Registry did not answer on %s\n",
                r->url);
        td_h_dump_log(&r->proc);
        return -1;
    }
    return 0;
}

int td_h_registry_start(td_h_registry_t *r) {
    memset(r, 0, sizeof(*r));
    r->port = td_h_free_port();
    snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d/apis/ccompat/v7",
             r->port);
    return registry_spawn(r);
}

void td_h_registry_stop(td_h_registry_t *r) {
    if (r->proc.pid <= 0) return;
    td_h_signal(&r->proc, SIGKILL);
    td_h_wait(&r->proc, 10000);
}

int64_t td_h_registry_register(const td_h_registry_t *r,
                               const char *subject,
                               const char *json) {
    json_t *req = json_pack("{s:s, s:s}", "schema", json, "schemaType", "AVRO");
    json_t *ans = NULL;
    char *post = req ? json_dumps(req, JSON_COMPACT) : NULL, url[512], *body;
    int64_t id = -1;
    long status;

    snprintf(url, sizeof(url), "%s/subjects/%s/versions", r->url, subject);
    body = post ? h_http(url, post, &status) : NULL;
    if (body && status == 200) ans = json_loads(body, 0, NULL);
    if (json_is_integer(json_object_get(ans, "id")))
        id = json_integer_value(json_object_get(ans, "id"));
    else
        fprintf(stderr, "harness: registering %s: HTTP %ld %s\n", subject,
                status, body ? body : "");
    json_decref(req);
    json_decref(ans);
    free(post);
    free(body);
    return id;
}

/* ---- producer ---- */

struct td_h_producer_s {
    rd_kafka_t *rk;
    td_codec_t *codec;
    char buf[1 << 16];
};

td_h_producer_t *td_h_producer_new(const char *bootstrap) {
    td_h_producer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[512];

    rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(kc, "enable.idempotence", "true", errstr, sizeof(errstr));
    rd_kafka_conf_set(kc, "compression.codec", "lz4", errstr, sizeof(errstr));
    rd_kafka_conf_set(kc, "linger.ms", "5", errstr, sizeof(errstr));
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    p->codec = td_codec_new(errstr, sizeof(errstr));
    if (!p->rk || !p->codec) {
        fprintf(stderr, "harness producer: %s\n", errstr);
        abort();
    }
    return p;
}

int td_h_produce_raw(td_h_producer_t *p,
                     const char *topic,
                     int32_t partition,
                     const void *key,
                     size_t key_len,
                     const void *value,
                     size_t len) {
    rd_kafka_resp_err_t err;
    do {
        err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                               : partition),
            RD_KAFKA_V_KEY((void *)key, key_len),
            RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(p->rk, 50);
    } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    return err ? -1 : 0;
}

int td_h_produce(td_h_producer_t *p, const td_event_t *ev, int32_t partition) {
    static const char *topics[] = {"orders", "reviews", "refunds"};
    char errstr[256];
    size_t len;
    if (td_codec_encode(p->codec, ev, p->buf, sizeof(p->buf), &len, errstr,
                        sizeof(errstr)) != TD_OK) {
        fprintf(stderr, "harness encode: %s\n", errstr);
        return -1;
    }
    return td_h_produce_raw(p, topics[ev->kind], partition, ev->merchant_id.ptr,
                            ev->merchant_id.len, p->buf, len);
}

int td_h_produce_event(td_h_producer_t *p,
                       td_event_kind_t kind,
                       const char *m,
                       int64_t t,
                       int status,
                       int rating,
                       int64_t amount) {
    td_event_t ev;

    td_h_event(&ev, kind, m, t);
    if (kind == TD_EV_ORDER) {
        ev.u.order.status = status;
        ev.u.order.amount_cents = amount;
    } else if (kind == TD_EV_REVIEW) {
        ev.u.review.rating = rating;
    } else {
        ev.u.refund.status = status;
        ev.u.refund.amount_cents = amount;
    }
    return td_h_produce(p, &ev, -1);
}

void td_h_event(td_event_t *ev,
                td_event_kind_t kind,
                const char *m,
                int64_t t) {
    static char ids[64][32];
    static unsigned seq;
    char *id = ids[seq % 64];

    snprintf(id, sizeof(ids[0]), "h-%d-%u", (int)getpid(), seq++);
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->event_id = (td_str_t){id, strlen(id)};
    ev->merchant_id = (td_str_t){m, strlen(m)};
    ev->order_id = (td_str_t){"o-1", 3};
    ev->buyer_id = (td_str_t){"b-1", 3};
    ev->event_time = t;
    switch (kind) {
    case TD_EV_ORDER:
        ev->u.order.status = TD_ORDER_PAID;
        ev->u.order.amount_cents = 1000;
        ev->u.order.channel = TD_CHANNEL_LIVE;
        ev->u.order.cancelled_by = TD_NULL_ENUM;
        ev->u.order.promised_ship_by = t + 48 * 3600000LL;
        ev->u.order.promised_delivery_by = TD_NULL_TS;
        ev->u.order.tracking_valid = TD_NULL_BOOL;
        ev->u.order.paid_at = TD_NULL_TS;
        ev->u.order.shipped_at = TD_NULL_TS;
        break;
    case TD_EV_REVIEW:
        ev->u.review.rating = 5;
        break;
    default:
        ev->u.refund.refund_id = (td_str_t){"r-1", 3};
        ev->u.refund.status = TD_REFUND_REQUESTED;
        ev->u.refund.kind = TD_KIND_REFUND_ONLY;
        ev->u.refund.reason = TD_REASON_QUALITY;
        ev->u.refund.amount_cents = 1000;
        ev->u.refund.responsible = TD_NULL_ENUM;
        ev->u.refund.requested_at = TD_NULL_TS;
    }
}

int td_h_producer_flush(td_h_producer_t *p) {
    return rd_kafka_flush(p->rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

void td_h_producer_destroy(td_h_producer_t *p) {
    if (!p) return;
    rd_kafka_flush(p->rk, 10000);
    rd_kafka_destroy(p->rk);
    td_codec_destroy(p->codec);
    free(p);
}

/* ---- consuming a whole topic ---- */

int td_h_consume_all(const char *bootstrap,
                     const char *topic,
                     void (*cb)(const rd_kafka_message_t *m, void *arg),
                     void *arg) {
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;
    const rd_kafka_metadata_t *md;
    rd_kafka_topic_partition_list_t *parts;
    int64_t *hi;
    int cnt = 0, remaining = 0, nparts;
    int64_t deadline = mono_ms() + 30000;

    rd_kafka_conf_set(kc, "bootstrap.servers", bootstrap, errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(kc, "group.id", "td-test-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                      sizeof(errstr));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    if (!rk) return -1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != 0 || md->topic_cnt != 1) {
        fprintf(stderr, "harness: no metadata for %s\n", topic);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return -1;
    }
    nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    hi = calloc((size_t)nparts, sizeof(*hi));
    parts = rd_kafka_topic_partition_list_new(nparts);
    for (int i = 0; i < nparts; i++) {
        int64_t lo;
        if (rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi[i],
                                             10000) != 0)
            hi[i] = 0;
        if (hi[i] > lo) {
            rd_kafka_topic_partition_list_add(parts, topic, i)->offset = lo;
            remaining++;
        }
    }
    rd_kafka_assign(rk, parts);
    while (remaining > 0 && mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (!m->err) {
            cnt++;
            if (cb) cb(m, arg);
            if (m->offset + 1 >= hi[m->partition]) remaining--;
        }
        rd_kafka_message_destroy(m);
    }
    if (remaining > 0)
        fprintf(stderr,
                "harness: %s: %d partitions not read to the end "
                "(%d messages read)\n",
                topic, remaining, cnt);
    rd_kafka_topic_partition_list_destroy(parts);
    free(hi);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return remaining > 0 ? -1 : cnt;
}

/* ---- Redis Cluster ---- */

int td_h_redis_restart_with(td_h_redis_t *r, const char *const *extra) {
    return redis_spawn(r, extra);
}

static const char *const *cluster_args(td_h_cluster_t *c) {
    static const char *args[12];
    int n = 0;
    args[n++] = "--cluster-enabled";
    args[n++] = "yes";
    args[n++] = "--cluster-config-file";
    args[n++] = "nodes.conf";
    args[n++] = "--cluster-node-timeout";
    args[n++] = c->node_timeout;
    /* A replica may always take over, however long it was cut off. */
    args[n++] = "--cluster-replica-validity-factor";
    args[n++] = "0";
    args[n] = NULL;
    return args;
}

/* 1 if nothing listens on 127.0.0.1:port. */
static int port_free(int port) {
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* A port for a cluster node: at most 55535, since the cluster bus listens
 * on port + 10000, and below the ephemeral range; both free. */
static int cluster_port(void) {
    static unsigned next;
    if (!next) next = 20000 + (unsigned)(getpid() % 2000) * 7;
    for (int tries = 0; tries < 5000; tries++) {
        int p = 20000 + (int)(next++ % 25000);
        if (port_free(p) && port_free(p + 10000)) return p;
    }
    return -1;
}

/* A field of a "name:value" text reply (INFO, CLUSTER INFO) as a long, or
 * -1. */
static long info_field(redisContext *rc, const char *cmd, const char *name) {
    redisReply *r = redisCommand(rc, cmd);
    long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, name);
        size_t n = strlen(name);
        if (p && p[n] == ':')
            v = strncmp(p + n + 1, "ok", 2) == 0 ? 1
                                                 : strtol(p + n + 1, NULL, 10);
    }
    if (r) freeReplyObject(r);
    return v;
}

int td_h_cluster_ready(void *arg) {
    td_h_cluster_t *c = arg;
    int per = c->masters ? c->n / c->masters - 1 : 0;

    for (int i = 0; i < c->n; i++) {
        redisContext *rc;
        int ok = 1;
        if (c->node[i].proc.pid <= 0) continue;
        if (!(rc = td_h_redis_connect(&c->node[i]))) return 0;
        ok = info_field(rc, "CLUSTER INFO", "cluster_state") == 1 &&
             info_field(rc, "CLUSTER INFO", "cluster_slots_ok") == 16384 &&
             info_field(rc, "CLUSTER INFO", "cluster_slots_pfail") == 0;
        if (ok && !strcmp(td_h_cluster_role(c, i), "master")) {
            /* WAIT without writes counts the replicas online and acking:
             * what trustd's WAIT needs. */
            redisReply *r = redisCommand(rc, "WAIT %d 100", per);
            ok = r && r->type == REDIS_REPLY_INTEGER && r->integer >= per;
            if (r) freeReplyObject(r);
        }
        redisFree(rc);
        if (!ok) return 0;
    }
    return 1;
}

int td_h_cluster_start(td_h_cluster_t *c,
                       int masters,
                       int replicas,
                       int node_timeout_ms) {
    char *argv[TD_H_CLUSTER_MAX + 8];
    char addr[TD_H_CLUSTER_MAX][32], reps[8];
    td_h_proc_t cli;
    int n = 0, status;

    memset(c, 0, sizeof(*c));
    c->n = masters * (1 + replicas);
    c->masters = masters;
    if (c->n > TD_H_CLUSTER_MAX) return -1;
    snprintf(c->node_timeout, sizeof(c->node_timeout), "%d", node_timeout_ms);
    for (int i = 0; i < c->n; i++) {
        td_h_redis_t *r = &c->node[i];
        static int seq;
        r->port = cluster_port();
        snprintf(r->dir, sizeof(r->dir), "%s/cluster%d", td_h_tmpdir(), seq++);
        mkdir(r->dir, 0755);
        snprintf(r->addr, sizeof(r->addr), "127.0.0.1:%d", r->port);
        if (r->port < 0 || redis_spawn(r, cluster_args(c)) != 0) return -1;
        snprintf(addr[i], sizeof(addr[i]), "%s", r->addr);
    }
    snprintf(c->seeds, sizeof(c->seeds), "%s,%s", c->node[0].addr,
             c->node[c->n > 1 ? 1 : 0].addr);
    snprintf(reps, sizeof(reps), "%d", replicas);
    argv[n++] = "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    for (int i = 0; i < c->n; i++)
        argv[n++] = addr[i];
    argv[n++] = "--cluster-replicas";
    argv[n++] = reps;
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    if (td_h_spawn(&cli, "cluster-create", argv) != 0) return -1;
    status = td_h_wait(&cli, 60000);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        td_h_dump_log(&cli);
        return -1;
    }
    if (!td_h_poll(td_h_cluster_ready, c, 60000)) {
        fprintf(stderr, "harness: cluster not ready in 60 s\n");
        return -1;
    }
    return 0;
}

int td_h_cluster_restart(td_h_cluster_t *c, int i) {
    return td_h_redis_restart_with(&c->node[i], cluster_args(c));
}

const char *td_h_cluster_role(td_h_cluster_t *c, int i) {
    static char role[16];
    redisContext *rc;
    redisReply *r;

    role[0] = '\0';
    if (c->node[i].proc.pid <= 0 || !(rc = td_h_redis_connect(&c->node[i])))
        return role;
    r = redisCommand(rc, "ROLE");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(role, sizeof(role), "%s", r->element[0]->str);
    if (r) freeReplyObject(r);
    redisFree(rc);
    return role;
}

int td_h_cluster_master_of(td_h_cluster_t *c, int slot) {
    for (int i = 0; i < c->n; i++) {
        redisContext *rc;
        redisReply *r;
        int port = -1;
        if (c->node[i].proc.pid <= 0 || !(rc = td_h_redis_connect(&c->node[i])))
            continue;
        r = redisCommand(rc, "CLUSTER SLOTS");
        for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements;
             k++) {
            redisReply *e = r->element[k];
            if (e->elements >= 3 && e->element[0]->integer <= slot &&
                slot <= e->element[1]->integer)
                port = (int)e->element[2]->element[1]->integer;
        }
        if (r) freeReplyObject(r);
        redisFree(rc);
        for (int j = 0; port > 0 && j < c->n; j++) {
            if (c->node[j].port == port) return j;
        }
        return -1;
    }
    return -1;
}

int td_h_cluster_id(td_h_cluster_t *c, int i, char *id) {
    redisContext *rc = td_h_redis_connect(&c->node[i]);
    redisReply *r;
    int rv = -1;

    if (!rc) return -1;
    r = redisCommand(rc, "CLUSTER MYID");
    if (r && r->type == REDIS_REPLY_STRING && r->len == 40) {
        memcpy(id, r->str, 41);
        rv = 0;
    }
    if (r) freeReplyObject(r);
    redisFree(rc);
    return rv;
}

void td_h_cluster_stop(td_h_cluster_t *c) {
    for (int i = 0; i < c->n; i++) {
        if (c->node[i].proc.pid > 0) td_h_redis_stop(&c->node[i]);
    }
}

/* ---- reference fold ---- */

typedef struct ref_merchant_s {
    char id[TD_MERCHANT_ID_MAX + 1];
    td_sigstate_t st;
} ref_merchant_t;

struct td_h_ref_s {
    ref_merchant_t *m;
    int cnt, cap;
};

td_h_ref_t *td_h_ref_new(void) {
    td_h_ref_t *r = calloc(1, sizeof(*r));
    if (!r) abort();
    return r;
}

void td_h_ref_destroy(td_h_ref_t *r) {
    if (!r) return;
    free(r->m);
    free(r);
}

void td_h_ref_add(td_h_ref_t *r, const td_event_t *ev) {
    ref_merchant_t *m = NULL;
    td_sigdelta_t d;

    for (int i = 0; i < r->cnt && !m; i++) {
        if (strlen(r->m[i].id) == ev->merchant_id.len &&
            !memcmp(r->m[i].id, ev->merchant_id.ptr, ev->merchant_id.len))
            m = &r->m[i];
    }
    if (!m) {
        if (r->cnt == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->m = realloc(r->m, (size_t)r->cap * sizeof(*r->m));
            if (!r->m) abort();
        }
        m = &r->m[r->cnt++];
        snprintf(m->id, sizeof(m->id), "%.*s", (int)ev->merchant_id.len,
                 ev->merchant_id.ptr);
        td_sigstate_init(&m->st);
    }
    /* One delta per event: merges commute, so this is any run's result. */
    td_sigdelta_init(&d, ev->kind);
    td_sigdelta_add(&d, ev);
    td_sigstate_merge(&m->st, &d);
}

int td_h_ref_count(const td_h_ref_t *r) {
    return r->cnt;
}

const char *td_h_ref_id(const td_h_ref_t *r, int i) {
    return r->m[i].id;
}

int td_h_ref_compare(const td_h_ref_t *r,
                     int i,
                     const redisReply *h,
                     char *why,
                     size_t why_size) {
    const ref_merchant_t *m = &r->m[i];
    const char *asof = NULL;

    if (!h || h->type != REDIS_REPLY_ARRAY) {
        snprintf(why, why_size, "%s: no reply", m->id);
        return -1;
    }
    for (size_t j = 0; j + 1 < h->elements; j += 2) {
        if (!strcmp(h->element[j]->str, "as_of_ms"))
            asof = h->element[j + 1]->str;
    }
    for (int k = 0; k < TD_SIG__CNT; k++) {
        const char *name = td_signals[k].name, *got = NULL;
        for (size_t j = 0; j + 1 < h->elements; j += 2) {
            if (!strcmp(h->element[j]->str, name)) got = h->element[j + 1]->str;
        }
        if (!!got != !!m->st.present[k]) {
            snprintf(why, why_size, "%s %s: %s in Redis, %s in reference",
                     m->id, name, got ? got : "absent",
                     m->st.present[k] ? "present" : "absent");
            return -1;
        }
        if (got) {
            double g = strtod(got, NULL), want = m->st.v[k];
            if (fabs(g - want) > 1e-9 * fmax(1.0, fabs(want))) {
                snprintf(why, why_size, "%s %s: Redis %.17g, reference %.17g",
                         m->id, name, g, want);
                return -1;
            }
        }
    }
    if (!asof || strtoll(asof, NULL, 10) != m->st.as_of) {
        snprintf(why, why_size, "%s as_of_ms differs", m->id);
        return -1;
    }
    return 0;
}

int td_h_ref_equal(const td_h_ref_t *r,
                   redisContext *rc,
                   char *why,
                   size_t why_size) {
    int bad = 0;
    for (int i = 0; i < r->cnt && !bad; i++) {
        redisReply *h =
            redisCommand(rc, "HGETALL trust:{%s}:signals", r->m[i].id);
        bad = td_h_ref_compare(r, i, h, why, why_size);
        if (h) freeReplyObject(h);
    }
    return !bad;
}

/* ---- the score history ---- */

static int h_str(const redisReply *r) {
    return r && r->type == REDIS_REPLY_STRING;
}

int td_h_history_check(const char *m,
                       const redisReply *hist,
                       const redisReply *score,
                       char *why,
                       size_t why_size) {
    td_history_point_t p[TD_HISTORY_MAX + 1];
    const td_history_point_t *last;
    long long v;
    int n;

    if (!score || score->type != REDIS_REPLY_ARRAY || score->elements != 4 ||
        (hist && hist->type != REDIS_REPLY_NIL && !h_str(hist))) {
        snprintf(why, why_size, "%s: history: no reply", m);
        return -1;
    }
    if (!h_str(score->element[0])) {
        if (!h_str(hist)) return 0; /* never scored */
        snprintf(why, why_size, "%s: history without a score version", m);
        return -1;
    }
    v = atoll(score->element[0]->str);
    if (!h_str(hist) || hist->len % TD_HISTORY_POINT != 0 ||
        hist->len > TD_HISTORY_BYTES) {
        snprintf(why, why_size, "%s: score version %lld, history of %zu bytes",
                 m, v, h_str(hist) ? (size_t)hist->len : 0);
        return -1;
    }
    n = td_history_decode((const unsigned char *)hist->str, hist->len, p,
                          TD_HISTORY_MAX + 1);
    for (int i = 0; i < n; i++) {
        if ((long long)p[i].version != v - n + 1 + i) {
            snprintf(why, why_size,
                     "%s: history point %d of %d has version %llu, the "
                     "score hash %lld",
                     m, i, n, (unsigned long long)p[i].version, v);
            return -1;
        }
    }
    if (p[0].version != 1 && n < TD_HISTORY_MAX &&
        p[0].ms > p[n - 1].ms - (TD_HISTORY_DAYS - 1) * 86400000LL) {
        snprintf(why, why_size,
                 "%s: history starts at version %llu with %d points, "
                 "within the cap and the horizon",
                 m, (unsigned long long)p[0].version, n);
        return -1;
    }
    last = &p[n - 1];
    if (!h_str(score->element[1]) || !h_str(score->element[2]) ||
        !h_str(score->element[3]) ||
        fabs(last->score - strtod(score->element[1]->str, NULL)) > 0.0051 ||
        last->tier != atoi(score->element[2]->str) ||
        fabs(last->confidence - strtod(score->element[3]->str, NULL)) >
            0.0051) {
        snprintf(why, why_size,
                 "%s: last history point (%.2f, tier %d, %.2f) differs from "
                 "the score hash at version %lld",
                 m, last->score, last->tier, last->confidence, v);
        return -1;
    }
    return 0;
}

int td_h_ref_history_ok(const td_h_ref_t *r,
                        struct td_store_s *st,
                        redisContext *rc,
                        char *why,
                        size_t why_size) {
    static const char get[] = "GET trust:{%s}:history";
    static const char hm[] =
        "HMGET trust:{%s}:score version score tier confidence";
    char errstr[256] = "";
    int bad = 0, kept = 0;

    for (int i = 0; i < r->cnt; i++) {
        if (st) {
            td_store_append(st, get, r->m[i].id);
            td_store_append(st, hm, r->m[i].id);
        } else {
            redisAppendCommand(rc, get, r->m[i].id);
            redisAppendCommand(rc, hm, r->m[i].id);
        }
    }
    for (int i = 0; i < r->cnt; i++) {
        redisReply *h = NULL, *s = NULL;
        if (st) {
            h = td_store_reply(st, errstr, sizeof(errstr));
            s = td_store_reply(st, errstr, sizeof(errstr));
        } else if (redisGetReply(rc, (void **)&h) != REDIS_OK ||
                   redisGetReply(rc, (void **)&s) != REDIS_OK) {
            snprintf(errstr, sizeof(errstr), "%s", rc->errstr);
            bad = 1;
            snprintf(why, why_size, "history: %s", errstr);
            break; /* the connection is broken: nothing more to read */
        }
        if (!bad && (!h || !s)) {
            snprintf(why, why_size, "history: %s", errstr);
            bad = 1;
        }
        if (!bad && td_h_history_check(r->m[i].id, h, s, why, why_size) != 0)
            bad = 1;
        kept += h && h->type == REDIS_REPLY_STRING;
        if (h) freeReplyObject(h);
        if (s) freeReplyObject(s);
    }
    if (!bad && r->cnt > 0 && kept == 0) {
        /* Every merchant with events gets a first score: a check that
         * finds no history at all checks nothing. */
        snprintf(why, why_size, "no merchant has a score history");
        bad = 1;
    }
    return !bad;
}

long long td_h_committed_sum(redisContext *rc) {
    long long sum = 0;
    redisReply *keys = redisCommand(rc, "KEYS trust:part:*");
    if (!keys) return -1;
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *r =
            redisCommand(rc, "HGET %s committed", keys->element[i]->str);
        if (r && r->type == REDIS_REPLY_STRING && atoll(r->str) > 0)
            sum += atoll(r->str);
        if (r) freeReplyObject(r);
    }
    freeReplyObject(keys);
    return sum;
}

typedef struct h_committed_s {
    redisContext *rc;
    long long target;
} h_committed_t;

static int h_committed(void *arg) {
    h_committed_t *c = arg;
    return td_h_committed_sum(c->rc) >= c->target;
}

int td_h_committed_reached(redisContext *rc, long long target, int timeout_ms) {
    h_committed_t c = {rc, target};
    return td_h_poll(h_committed, &c, timeout_ms);
}

int td_h_produce_gen(td_h_producer_t *p,
                     struct td_loadgen_s *gen,
                     td_h_ref_t *ref,
                     int n,
                     int32_t (*part)(const td_event_t *ev, void *arg),
                     void *arg) {
    for (int i = 0; i < n; i++) {
        td_event_t ev;
        td_loadgen_next(gen, &ev);
        if (td_h_produce(p, &ev, part ? part(&ev, arg) : -1) != 0) return -1;
        td_h_ref_add(ref, &ev);
    }
    return td_h_producer_flush(p);
}

uint64_t td_h_xorshift(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* ---- one flush's merchant write, by hand ---- */

typedef struct {
    td_mstate_t *e;
    const char *src;
    int64_t lo, nx;
    int verdict; /* 1 apply, 0 applied before, -1 overlap */
    int64_t wm;
    int stale;
    int fields; /* load again with the readable hash */
} h_merge_t;

static int
h_load_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    h_merge_t *hm = opaque;
    td_proto_loaded_t l;
    int rc = td_proto_load_parse(hm->e, r, "", &l, errstr, errstr_size);
    if (rc == TD_PROTO_FIELDS) {
        hm->fields = 1;
        return TD_OK;
    }
    if (rc != TD_OK) return TD_ERR;
    hm->wm = td_proto_wm(&l, hm->src);
    hm->verdict = hm->wm >= hm->nx ? 0 : hm->wm > hm->lo ? -1 : 1;
    return TD_OK;
}

static int
h_put_cb(void *opaque, const redisReply *r, char *errstr, size_t errstr_size) {
    h_merge_t *hm = opaque;
    td_proto_put_reply_t pr;
    if (td_proto_put_parse(r, 0, &pr, errstr, errstr_size) != TD_OK)
        return TD_ERR;
    hm->stale = pr.stale;
    return TD_OK;
}

int td_h_merge(struct td_store_s *st,
               const char *m,
               const char *src,
               int64_t lo,
               int64_t nx,
               const td_sigdelta_t *d,
               char *err,
               size_t err_size) {
    td_mscache_t *cache = td_mscache_new();
    td_rbatch_t *b = td_rbatch_new();
    h_merge_t hm = {0};
    td_sigstate_t old, s;
    uint64_t expected;
    int rc = -1;

    hm.e = td_mscache_add(cache, m, strlen(m));
    hm.src = src;
    hm.lo = lo;
    hm.nx = nx;
    td_proto_load(st, b, m, strlen(m), 0, h_load_cb, &hm);
    if (td_store_exec(st, b, err, err_size) != TD_OK) goto out;
    if (hm.fields) {
        td_rbatch_reset(b);
        td_proto_load(st, b, m, strlen(m), 1, h_load_cb, &hm);
        if (td_store_exec(st, b, err, err_size) != TD_OK) goto out;
    }
    if (hm.verdict <= 0) {
        if (hm.verdict < 0)
            snprintf(err, err_size,
                     "TDOVERLAP source %s watermark %lld inside delta "
                     "%lld..%lld",
                     src, (long long)hm.wm, (long long)lo, (long long)nx);
        rc = hm.verdict;
        goto out;
    }
    td_mstate_to_sigstate(hm.e, &old);
    s = old;
    td_sigstate_merge(&s, d);
    expected = hm.e->version;
    td_mstate_from_sigstate(hm.e, &s);
    hm.e->version = expected + 1;
    td_rbatch_reset(b);
    td_proto_src_t ps = {src, lo, nx};
    td_proto_put_t req = {
        .e = hm.e, .expected = expected, .signals = &s, .srcs = &ps, .nsrc = 1};
    td_proto_put(st, b, &req, h_put_cb, &hm);
    if (td_store_exec(st, b, err, err_size) != TD_OK) goto out;
    if (hm.stale) {
        snprintf(err, err_size, "STALE");
        goto out;
    }
    rc = 1;
out:
    td_rbatch_destroy(b);
    td_mscache_destroy(cache);
    return rc;
}

/* ---- hand-made Avro ---- */

void td_h_wbyte(td_h_wbuf_t *w, uint8_t v) {
    assert_true(w->n < sizeof(w->b));
    w->b[w->n++] = v;
}

void td_h_wuvarint(td_h_wbuf_t *w, uint64_t u) {
    while (u > 0x7f) {
        td_h_wbyte(w, (uint8_t)(u | 0x80));
        u >>= 7;
    }
    td_h_wbyte(w, (uint8_t)u);
}

void td_h_wlong(td_h_wbuf_t *w, int64_t v) {
    td_h_wuvarint(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void td_h_wstr(td_h_wbuf_t *w, const char *s) {
    size_t n = strlen(s);

    td_h_wlong(w, (int64_t)n);
    assert_true(w->n + n <= sizeof(w->b));
    memcpy(w->b + w->n, s, n);
    w->n += n;
}

void td_h_wdouble(td_h_wbuf_t *w, double d) {
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    for (int i = 0; i < 8; i++)
        td_h_wbyte(w, (uint8_t)(u >> (8 * i)));
}
