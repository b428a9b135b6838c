/*
 * ngx_http_keygate_module: verifies API keys in nginx's access phase with
 * libkeygate, in the worker process, against signed keygate artifacts that
 * each worker re-checks on a timer.
 *
 *   keygate on|off;                                    (http, server, location)
 *   keygate_trust FILE; keygate_snapshot FILE;         (http, server)
 *   keygate_revocations FILE;                          (http, server)
 *   keygate_reload_interval 1s;                        (http, server)
 *   keygate_scope SCOPE;                               (http, server, location)
 *   keygate_state FILE;                                (http, server: high-water marks)
 *   keygate_realm NAME;                                (default "keygate")
 *   keygate_principal_header NAME;                     (default X-Keygate-Principal)
 *   keygate_retry_after SECONDS;                       (on a 503, default 5)
 *   keygate_metrics;                                   (location: Prometheus text,
 *                                                       every worker process added up)
 *   keygate_metrics_zone SIZE;                         (http: shared memory for that, 1m)
 *   keygate_key_source ...;                            (accepted for old configs: only
 *                                                       the contract's two sources)
 *
 * The module applies the core's gateway contract (keygate_verifier_check):
 * the key from Authorization: Bearer or X-API-Key; the answer's status and
 * headers; before the request goes upstream every key-bearing header and
 * every client copy of the principal header is removed and the principal
 * header set (percent-encoded beyond visible ASCII).
 *
 * Variables: $keygate_principal (as the principal header carries it),
 * $keygate_key_id, $keygate_outcome. The presented key is never logged.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "keygate.h"

/* What identifies one version of an artifact file without reading it is
 * the core's rule (keygate_file_stamp: inode, size, nanosecond times), the
 * same every keygate surface applies. (Whole-second mtime plus size missed a
 * second revocation update of the same size written in the same second.) */
typedef struct {
    char text[KEYGATE_FILE_STAMP_MAX];
    size_t len;
} ngx_http_keygate_stamp_t;

/* One set of artifact files and, per worker, the verifier loaded from them. */
typedef struct {
    ngx_str_t trust, snapshot, revocations, state;
    ngx_msec_t interval;
    keygate_verifier *verifier;
    ngx_http_keygate_stamp_t stamp[3];
    ngx_event_t timer;
    ngx_log_t *log;
    ngx_uint_t index;                      /* among the artifact sets */
    struct ngx_http_keygate_main_conf_s *main;
} ngx_http_keygate_source_t;

typedef struct ngx_http_keygate_main_conf_s {
    ngx_array_t sources; /* of ngx_http_keygate_source_t * */
    size_t zone_size;
    ngx_shm_zone_t *zone;
} ngx_http_keygate_main_conf_t;

/* Each worker's counters, per artifact set, as keygate's stats text in a
 * shared-memory slot (a seqlock: odd while being written), so one /metrics
 * request adds every worker up. A slot not written for STATS_STALE_MS
 * belongs to a worker that is gone. */
#define NGX_HTTP_KEYGATE_STATS_TEXT 12288
#define NGX_HTTP_KEYGATE_STATS_STALE_MS 10000
typedef struct {
    ngx_atomic_t seq;
    ngx_msec_t written;
    size_t len;
    u_char text[NGX_HTTP_KEYGATE_STATS_TEXT];
} ngx_http_keygate_slot_t;

typedef struct {
    ngx_uint_t nslots;
    ngx_http_keygate_slot_t slots[1];
} ngx_http_keygate_stats_zone_t;

typedef struct {
    ngx_http_keygate_source_t *source;
    ngx_str_t trust, snapshot, revocations, state;
    ngx_msec_t interval;
} ngx_http_keygate_srv_conf_t;

typedef struct {
    ngx_flag_t enable;
    ngx_str_t scope;
    ngx_str_t realm;
    ngx_str_t principal_header;
    ngx_uint_t retry_after;
    keygate_policy *policy;
    ngx_flag_t metrics;
} ngx_http_keygate_loc_conf_t;

typedef struct {
    keygate_answer answer;
    unsigned decided : 1;
} ngx_http_keygate_ctx_t;

static ngx_int_t ngx_http_keygate_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_keygate_init_process(ngx_cycle_t *cycle);
static void *ngx_http_keygate_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_keygate_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_keygate_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
static void *ngx_http_keygate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_keygate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_keygate_key_source(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_keygate_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_keygate_add_variables(ngx_conf_t *cf);

static ngx_http_output_header_filter_pt ngx_http_next_header_filter;

static ngx_command_t ngx_http_keygate_commands[] = {
    {ngx_string("keygate"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_keygate_loc_conf_t, enable), NULL},
    {ngx_string("keygate_trust"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_http_keygate_srv_conf_t, trust), NULL},
    {ngx_string("keygate_snapshot"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_http_keygate_srv_conf_t, snapshot), NULL},
    {ngx_string("keygate_revocations"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_http_keygate_srv_conf_t, revocations), NULL},
    {ngx_string("keygate_reload_interval"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_msec_slot, NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_http_keygate_srv_conf_t, interval), NULL},
    {ngx_string("keygate_scope"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_keygate_loc_conf_t, scope), NULL},
    {ngx_string("keygate_realm"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_keygate_loc_conf_t, realm), NULL},
    {ngx_string("keygate_key_source"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE,
     ngx_http_keygate_key_source, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},
    {ngx_string("keygate_principal_header"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_keygate_loc_conf_t, principal_header), NULL},
    {ngx_string("keygate_retry_after"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_num_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_keygate_loc_conf_t, retry_after), NULL},
    {ngx_string("keygate_state"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_http_keygate_srv_conf_t, state), NULL},
    {ngx_string("keygate_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, ngx_http_keygate_metrics,
     NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},
    {ngx_string("keygate_metrics_zone"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_size_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_keygate_main_conf_t, zone_size), NULL},
    ngx_null_command};

static ngx_http_module_t ngx_http_keygate_module_ctx = {
    ngx_http_keygate_add_variables,   /* preconfiguration */
    ngx_http_keygate_init,            /* postconfiguration */
    ngx_http_keygate_create_main_conf, NULL,
    ngx_http_keygate_create_srv_conf, ngx_http_keygate_merge_srv_conf,
    ngx_http_keygate_create_loc_conf, ngx_http_keygate_merge_loc_conf};

ngx_module_t ngx_http_keygate_module = {
    NGX_MODULE_V1, &ngx_http_keygate_module_ctx, ngx_http_keygate_commands, NGX_HTTP_MODULE,
    NULL, NULL, ngx_http_keygate_init_process, NULL, NULL, NULL, NULL, NGX_MODULE_V1_PADDING};

/* ---------------------------------------------------------------- config */

static void *ngx_http_keygate_create_main_conf(ngx_conf_t *cf) {
    ngx_http_keygate_main_conf_t *m = ngx_pcalloc(cf->pool, sizeof(*m));
    if (m == NULL || ngx_array_init(&m->sources, cf->pool, 4, sizeof(ngx_http_keygate_source_t *)) != NGX_OK) {
        return NULL;
    }
    m->zone_size = NGX_CONF_UNSET_SIZE;
    return m;
}

static void *ngx_http_keygate_create_srv_conf(ngx_conf_t *cf) {
    ngx_http_keygate_srv_conf_t *c = ngx_pcalloc(cf->pool, sizeof(*c));
    if (c == NULL) return NULL;
    c->interval = NGX_CONF_UNSET_MSEC;
    return c;
}

static char *ngx_http_keygate_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child) {
    ngx_http_keygate_srv_conf_t *prev = parent, *conf = child;
    ngx_conf_merge_msec_value(conf->interval, prev->interval, 1000);
    ngx_conf_merge_msec_value(prev->interval, prev->interval, 1000);
    /* The http-level files are one source shared by every server that does
     * not name its own; a server that names any file gets its own source. */
    ngx_http_keygate_srv_conf_t *owner = conf->snapshot.len ? conf : prev;
    if (conf->snapshot.len == 0) {
        conf->trust = prev->trust;
        conf->revocations = prev->revocations;
        conf->state = prev->state;
    }
    if (owner->snapshot.len == 0) return NGX_CONF_OK;
    if (owner->trust.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "keygate_snapshot without keygate_trust");
        return NGX_CONF_ERROR;
    }
    if (owner->source == NULL) {
        ngx_http_keygate_main_conf_t *m = ngx_http_conf_get_module_main_conf(cf, ngx_http_keygate_module);
        ngx_http_keygate_source_t *s = ngx_pcalloc(cf->pool, sizeof(*s));
        ngx_http_keygate_source_t **slot = ngx_array_push(&m->sources);
        if (s == NULL || slot == NULL) return NGX_CONF_ERROR;
        s->trust = owner->trust;
        s->snapshot = owner->snapshot;
        s->revocations = owner->revocations;
        s->state = owner->state;
        s->interval = owner->interval;
        s->index = m->sources.nelts - 1;
        s->main = m;
        *slot = s;
        owner->source = s;
    }
    conf->source = owner->source;
    return NGX_CONF_OK;
}

static void *ngx_http_keygate_create_loc_conf(ngx_conf_t *cf) {
    ngx_http_keygate_loc_conf_t *c = ngx_pcalloc(cf->pool, sizeof(*c));
    if (c == NULL) return NULL;
    c->enable = NGX_CONF_UNSET;
    c->metrics = NGX_CONF_UNSET;
    c->retry_after = NGX_CONF_UNSET_UINT;
    return c;
}

/* Accepted so existing configurations load: the contract fixes the key
 * sources, so only its own two may be named. */
static char *ngx_http_keygate_key_source(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_str_t *args = cf->args->elts;
    (void)cmd;
    (void)conf;
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        ngx_str_t *a = &args[i];
        int known = (a->len == sizeof("header:Authorization:Bearer") - 1 &&
                     ngx_strncasecmp(a->data, (u_char *)"header:Authorization:Bearer", a->len) == 0) ||
                    (a->len == sizeof("header:X-API-Key") - 1 &&
                     ngx_strncasecmp(a->data, (u_char *)"header:X-API-Key", a->len) == 0);
        if (!known) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "keygate_key_source \"%V\": keys are read from Authorization: Bearer and "
                               "X-API-Key (the gateway contract); remove this directive",
                               a);
            return NGX_CONF_ERROR;
        }
    }
    return NGX_CONF_OK;
}

static void ngx_http_keygate_policy_cleanup(void *data) { keygate_policy_free(data); }

static char *ngx_http_keygate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) {
    ngx_http_keygate_loc_conf_t *prev = parent, *conf = child;
    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->metrics, prev->metrics, 0);
    ngx_conf_merge_str_value(conf->scope, prev->scope, "");
    ngx_conf_merge_str_value(conf->realm, prev->realm, "keygate");
    ngx_conf_merge_str_value(conf->principal_header, prev->principal_header, "X-Keygate-Principal");
    ngx_conf_merge_uint_value(conf->retry_after, prev->retry_after, 5);
    if (conf->retry_after > 0xffffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "keygate_retry_after too large");
        return NGX_CONF_ERROR;
    }
    keygate_result r = keygate_policy_new((const char *)conf->realm.data, conf->realm.len,
                                          (const char *)conf->principal_header.data, conf->principal_header.len,
                                          (uint32_t)conf->retry_after, &conf->policy);
    if (r != KEYGATE_RESULT_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "keygate: keygate_realm \"%V\" / keygate_principal_header \"%V\": %s",
                           &conf->realm, &conf->principal_header, keygate_result_message(r));
        return NGX_CONF_ERROR;
    }
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        keygate_policy_free(conf->policy);
        return NGX_CONF_ERROR;
    }
    cln->handler = ngx_http_keygate_policy_cleanup;
    cln->data = conf->policy;
    return NGX_CONF_OK;
}

/* ------------------------------------------------------- artifact reload */

static int ngx_http_keygate_path(ngx_str_t *path, char *name, size_t cap) {
    if (path->len >= cap) return 0;
    ngx_memcpy(name, path->data, path->len);
    name[path->len] = 0;
    return 1;
}

/* Reads `path` into a malloc'd buffer when its stamp differs from `*stamp`
 * (or `stamp` is NULL); NULL when unchanged, missing (`*missing` set) or on
 * error (logged). The stamp taken before the read goes to `*next`: if the
 * file is replaced meanwhile, the next tick sees a new stamp and reads again. */
static u_char *ngx_http_keygate_read(ngx_str_t *path, size_t *len, ngx_log_t *log, ngx_http_keygate_stamp_t *stamp,
                                     ngx_http_keygate_stamp_t *next, int *missing) {
    char name[NGX_MAX_PATH];
    ngx_http_keygate_stamp_t now;
    if (missing) *missing = 0;
    if (!ngx_http_keygate_path(path, name, sizeof(name))) return NULL;
    keygate_result r = keygate_file_stamp(name, path->len, now.text, sizeof(now.text), &now.len);
    if (r == KEYGATE_RESULT_FILE_NOT_FOUND && missing) {
        *missing = 1;
        return NULL;
    }
    if (r != KEYGATE_RESULT_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "keygate: \"%s\": %s", name, keygate_result_message(r));
        return NULL;
    }
    if (stamp && stamp->len == now.len && ngx_memcmp(stamp->text, now.text, now.len) == 0) {
        return NULL; /* unchanged */
    }
    ngx_fd_t fd = ngx_open_file(name, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "keygate: cannot open \"%s\"", name);
        return NULL;
    }
    /* The size from the open file: the path may have been replaced since. */
    ngx_file_info_t fi;
    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_close_file(fd);
        return NULL;
    }
    size_t n = (size_t)ngx_file_size(&fi);
    u_char *buf = ngx_alloc(n ? n : 1, log);
    ssize_t got = buf ? ngx_read_fd(fd, buf, n) : -1;
    ngx_close_file(fd);
    if (got < 0 || (size_t)got != n) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "keygate: cannot read \"%s\"", name);
        ngx_free(buf);
        return NULL;
    }
    if (next) *next = now;
    *len = n;
    return buf;
}

/* Writes the verifier's high-water marks to the state file: a temp file
 * per worker process, then rename, so a reader never sees half of it. */
static void ngx_http_keygate_save_state(ngx_http_keygate_source_t *s) {
    char text[KEYGATE_STATE_MAX], name[NGX_MAX_PATH], tmp[NGX_MAX_PATH + 32];
    size_t len = 0;
    if (s->state.len == 0 || !ngx_http_keygate_path(&s->state, name, sizeof(name))) return;
    if (keygate_verifier_state(s->verifier, text, sizeof(text), &len) != KEYGATE_RESULT_OK) return;
    ngx_snprintf((u_char *)tmp, sizeof(tmp), "%s.%P.tmp%Z", name, ngx_pid);
    ngx_fd_t fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, s->log, ngx_errno, "keygate: state \"%s\" not saved", tmp);
        return;
    }
    ssize_t w = ngx_write_fd(fd, text, len);
    int ok = w == (ssize_t)len && fsync(fd) == 0;
    ngx_close_file(fd);
    if (!ok || ngx_rename_file(tmp, name) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, s->log, ngx_errno, "keygate: state \"%s\" not saved", name);
        ngx_delete_file(tmp);
    }
}

typedef keygate_result (*ngx_http_keygate_loader_pt)(keygate_verifier *, const uint8_t *, size_t);

/* Loads one artifact if its file changed. A missing trust update or
 * revocation file is "none yet"; a missing snapshot is an error. A refused
 * artifact keeps the current state and is retried on every tick (it may be
 * accepted once the trust it needs has arrived). Returns 1 when installed. */
static int ngx_http_keygate_load(ngx_http_keygate_source_t *s, ngx_str_t *path, int slot,
                                 ngx_http_keygate_loader_pt load, const char *what) {
    size_t len;
    int missing;
    ngx_http_keygate_stamp_t next;
    if (path->len == 0) return 0;
    u_char *buf = ngx_http_keygate_read(path, &len, s->log, &s->stamp[slot], &next, &missing);
    if (buf == NULL) {
        if (missing && slot == 1) ngx_log_error(NGX_LOG_ERR, s->log, 0, "keygate: snapshot \"%V\" missing", path);
        return 0;
    }
    keygate_result r = load(s->verifier, buf, len);
    ngx_free(buf);
    if (r != KEYGATE_RESULT_OK) {
        ngx_log_error(NGX_LOG_ERR, s->log, 0, "keygate: %s \"%V\" refused: %s", what, path, keygate_result_message(r));
        return 0;
    }
    s->stamp[slot] = next;
    ngx_log_error(NGX_LOG_INFO, s->log, 0, "keygate: %s \"%V\" loaded", what, path);
    return 1;
}

/* The verifier from the pinned trust file, and the saved high-water marks. */
static void ngx_http_keygate_start(ngx_http_keygate_source_t *s) {
    size_t len;
    u_char *trust = ngx_http_keygate_read(&s->trust, &len, s->log, NULL, NULL, NULL);
    if (trust == NULL) return; /* logged; requests answer 503 until it loads */
    keygate_result r = keygate_verifier_new(trust, len, &s->verifier);
    ngx_free(trust);
    if (r != KEYGATE_RESULT_OK) {
        ngx_log_error(NGX_LOG_ERR, s->log, 0, "keygate: trust \"%V\" refused: %s", &s->trust,
                      keygate_result_message(r));
        s->verifier = NULL;
        return;
    }
    if (s->state.len) {
        int missing;
        u_char *state = ngx_http_keygate_read(&s->state, &len, s->log, NULL, NULL, &missing);
        if (state) {
            r = keygate_verifier_restore_state(s->verifier, state, len);
            ngx_free(state);
            if (r != KEYGATE_RESULT_OK) {
                /* A state file for another keyset or garbled: refuse to run
                 * on it rather than forget the rollback floor silently. */
                ngx_log_error(NGX_LOG_ALERT, s->log, 0, "keygate: state \"%V\" refused: %s", &s->state,
                              keygate_result_message(r));
                keygate_verifier_free(s->verifier);
                s->verifier = NULL;
            }
        }
    }
}

static void ngx_http_keygate_reload(ngx_http_keygate_source_t *s) {
    if (s->verifier == NULL) ngx_http_keygate_start(s);
    if (s->verifier == NULL) return;
    int changed = ngx_http_keygate_load(s, &s->trust, 0, keygate_verifier_load_trust, "trust");
    changed |= ngx_http_keygate_load(s, &s->snapshot, 1, keygate_verifier_load_snapshot, "snapshot");
    changed |= ngx_http_keygate_load(s, &s->revocations, 2, keygate_verifier_load_revocations, "revocations");
    if (changed) ngx_http_keygate_save_state(s);
}

/* This worker's slot for source `s`, or NULL when the zone has none. */
static ngx_http_keygate_slot_t *ngx_http_keygate_slot(ngx_http_keygate_source_t *s, ngx_uint_t worker) {
    ngx_http_keygate_main_conf_t *m = s->main;
    if (m->zone == NULL || m->zone->data == NULL) return NULL;
    ngx_http_keygate_stats_zone_t *z = m->zone->data;
    ngx_uint_t i = worker * m->sources.nelts + s->index;
    return i < z->nslots ? &z->slots[i] : NULL;
}

/* Publishes this worker's counters for the others' /metrics. */
static void ngx_http_keygate_publish_stats(ngx_http_keygate_source_t *s) {
    ngx_http_keygate_slot_t *slot = ngx_http_keygate_slot(s, ngx_worker);
    if (slot == NULL || s->verifier == NULL) return;
    static char text[NGX_HTTP_KEYGATE_STATS_TEXT];
    size_t len = 0;
    if (keygate_verifier_stats_text(s->verifier, text, sizeof(text), &len) != KEYGATE_RESULT_OK) return;
    slot->seq++; /* odd: being written */
    ngx_memory_barrier();
    ngx_memcpy(slot->text, text, len);
    slot->len = len;
    slot->written = ngx_current_msec;
    ngx_memory_barrier();
    slot->seq++;
}

static void ngx_http_keygate_timer(ngx_event_t *ev) {
    ngx_http_keygate_source_t *s = ev->data;
    if (ngx_exiting || ngx_quit || ngx_terminate) return;
    ngx_http_keygate_reload(s);
    ngx_http_keygate_publish_stats(s);
    ngx_add_timer(ev, s->interval);
}

static ngx_int_t ngx_http_keygate_init_process(ngx_cycle_t *cycle) {
    ngx_http_keygate_main_conf_t *m = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_keygate_module);
    if (m == NULL) return NGX_OK;
    ngx_http_keygate_source_t **ss = m->sources.elts;
    for (ngx_uint_t i = 0; i < m->sources.nelts; i++) {
        ngx_http_keygate_source_t *s = ss[i];
        s->log = cycle->log;
        ngx_http_keygate_reload(s);
        /* Armed whether or not the trust loaded: a worker that started
         * without it keeps trying (it answers 503 meanwhile). */
        s->timer.handler = ngx_http_keygate_timer;
        s->timer.data = s;
        s->timer.log = cycle->log;
        s->timer.cancelable = 1;
        ngx_add_timer(&s->timer, s->interval);
    }
    return NGX_OK;
}

/* ---------------------------------------------------------- the request */

/* Removes every request header the policy strips (the key-bearing ones and
 * client copies of the principal header) from the list the proxy modules
 * forward, shifting the rest of its part down. */
static void ngx_http_keygate_strip(ngx_http_request_t *r, keygate_policy *policy) {
    for (ngx_list_part_t *part = &r->headers_in.headers.part; part; part = part->next) {
        ngx_table_elt_t *h = part->elts;
        for (ngx_uint_t i = 0; i < part->nelts; /* advanced below */) {
            if (!keygate_policy_strips(policy, h[i].key.data, h[i].key.len, h[i].value.data, h[i].value.len)) {
                i++;
                continue;
            }
            if (r->headers_in.authorization == &h[i]) r->headers_in.authorization = NULL;
            /* A pointer nginx keeps into the entries after it moves down
             * with them: authorization is the only one on the strip list. */
            if (r->headers_in.authorization > &h[i] && r->headers_in.authorization < &h[part->nelts])
                r->headers_in.authorization--;
            ngx_memmove(&h[i], &h[i + 1], (part->nelts - i - 1) * sizeof(ngx_table_elt_t));
            part->nelts--;
        }
    }
}

static ngx_int_t ngx_http_keygate_set_principal(ngx_http_request_t *r, ngx_http_keygate_loc_conf_t *lc,
                                                keygate_answer *a) {
    ngx_table_elt_t *h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) return NGX_ERROR;
    h->key = lc->principal_header;
    h->value.len = a->principal_value_len;
    h->value.data = (u_char *)a->principal_value;
    h->lowcase_key = ngx_pnalloc(r->pool, h->key.len);
    if (h->lowcase_key == NULL) return NGX_ERROR;
    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, h->key.len);
    return NGX_OK;
}

static ngx_int_t ngx_http_keygate_add_headers(ngx_http_request_t *r, keygate_answer *a) {
    for (size_t i = 0; i < a->response_headers_len; i++) {
        keygate_response_header *rh = &a->response_headers[i];
        ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) return NGX_ERROR;
        h->hash = 1;
        h->key.data = (u_char *)rh->name;
        h->key.len = ngx_strlen(rh->name);
        h->value.data = (u_char *)rh->value;
        h->value.len = rh->value_len;
        if (h->key.len == sizeof("WWW-Authenticate") - 1 &&
            ngx_strncmp(h->key.data, "WWW-Authenticate", h->key.len) == 0) {
            r->headers_out.www_authenticate = h;
        }
    }
    return NGX_OK;
}

static ngx_int_t ngx_http_keygate_handler(ngx_http_request_t *r) {
    ngx_http_keygate_loc_conf_t *lc = ngx_http_get_module_loc_conf(r, ngx_http_keygate_module);
    if (!lc->enable || r->main != r) return NGX_DECLINED;
    ngx_http_keygate_srv_conf_t *sc = ngx_http_get_module_srv_conf(r, ngx_http_keygate_module);
    ngx_http_keygate_ctx_t *ctx = ngx_http_get_module_ctx(r, ngx_http_keygate_module);
    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(*ctx));
        if (ctx == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        ngx_http_set_ctx(r, ctx, ngx_http_keygate_module);
    }
    ngx_uint_t n = 0;
    for (ngx_list_part_t *part = &r->headers_in.headers.part; part; part = part->next) n += part->nelts;
    keygate_header *hs = ngx_palloc(r->pool, (n ? n : 1) * sizeof(keygate_header));
    if (hs == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    n = 0;
    for (ngx_list_part_t *part = &r->headers_in.headers.part; part; part = part->next) {
        ngx_table_elt_t *h = part->elts;
        for (ngx_uint_t i = 0; i < part->nelts; i++, n++) {
            hs[n] = (keygate_header){h[i].key.data, h[i].key.len, h[i].value.data, h[i].value.len};
        }
    }
    keygate_verifier *v = sc->source ? sc->source->verifier : NULL;
    keygate_result res = keygate_verifier_check(v, hs, n, (const char *)lc->scope.data, lc->scope.len, 0, lc->policy,
                                                &ctx->answer);
    if (res != KEYGATE_RESULT_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "keygate: check failed: %s", keygate_result_message(res));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ctx->decided = 1;
    keygate_answer *a = &ctx->answer;
    if (!a->forward) {
        if (v == NULL) ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "keygate: no trust anchor loaded");
        if (ngx_http_keygate_add_headers(r, a) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        return a->status;
    }
    ngx_http_keygate_strip(r, lc->policy);
    if (ngx_http_keygate_set_principal(r, lc, a) != NGX_OK) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    return NGX_OK;
}

/* Deprecation (RFC 9745) and Sunset (RFC 8594) on responses to rotated keys. */
static ngx_int_t ngx_http_keygate_header_filter(ngx_http_request_t *r) {
    ngx_http_keygate_ctx_t *ctx = ngx_http_get_module_ctx(r->main, ngx_http_keygate_module);
    if (ctx && ctx->decided && ctx->answer.forward && r == r->main) {
        if (ngx_http_keygate_add_headers(r, &ctx->answer) != NGX_OK) return NGX_ERROR;
    }
    return ngx_http_next_header_filter(r);
}

/* ---------------------------------------------------------- variables */

static ngx_int_t ngx_http_keygate_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data) {
    ngx_http_keygate_ctx_t *ctx = ngx_http_get_module_ctx(r->main, ngx_http_keygate_module);
    if (ctx == NULL || !ctx->decided || !ctx->answer.verified || (data == 0 && !ctx->answer.forward)) {
        v->not_found = 1;
        return NGX_OK;
    }
    keygate_verdict *d = &ctx->answer.verdict;
    u_char *p;
    switch (data) {
    case 0: /* principal, as the principal header carries it */
        v->len = ctx->answer.principal_value_len;
        v->data = (u_char *)ctx->answer.principal_value;
        break;
    case 1: /* key id */
        p = ngx_pnalloc(r->pool, 32);
        if (p == NULL) return NGX_ERROR;
        ngx_hex_dump(p, d->key_id, 16);
        v->len = 32;
        v->data = p;
        break;
    default: /* outcome */
        v->data = (u_char *)keygate_outcome_name(d->outcome);
        v->len = ngx_strlen(v->data);
    }
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    return NGX_OK;
}

static ngx_int_t ngx_http_keygate_add_variables(ngx_conf_t *cf) {
    static ngx_str_t names[] = {ngx_string("keygate_principal"), ngx_string("keygate_key_id"),
                                ngx_string("keygate_outcome")};
    for (uintptr_t i = 0; i < 3; i++) {
        ngx_http_variable_t *var = ngx_http_add_variable(cf, &names[i], NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) return NGX_ERROR;
        var->get_handler = ngx_http_keygate_variable;
        var->data = i;
    }
    return NGX_OK;
}

/* ------------------------------------------------------------ metrics */

/* Prometheus text of every live worker's counters for this server's
 * artifact set, added up by libkeygate (counts summed, versions the lowest
 * any worker has in force). */
static ngx_int_t ngx_http_keygate_metrics_handler(ngx_http_request_t *r) {
    ngx_http_keygate_srv_conf_t *sc = ngx_http_get_module_srv_conf(r, ngx_http_keygate_module);
    ngx_http_keygate_source_t *src = sc->source;
    if (src == NULL || src->verifier == NULL) return NGX_HTTP_SERVICE_UNAVAILABLE;
    ngx_http_keygate_publish_stats(src);
    ngx_http_keygate_stats_zone_t *z = src->main->zone ? src->main->zone->data : NULL;
    ngx_uint_t workers = z ? z->nslots / src->main->sources.nelts : 0;
    size_t cap = (workers ? workers : 1) * NGX_HTTP_KEYGATE_STATS_TEXT, total = 0;
    u_char *texts = ngx_pnalloc(r->pool, cap);
    if (texts == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    for (ngx_uint_t w = 0; w < workers; w++) {
        ngx_http_keygate_slot_t *slot = ngx_http_keygate_slot(src, w);
        for (int tries = 0; slot && tries < 3; tries++) {
            ngx_atomic_uint_t seq = slot->seq;
            ngx_memory_barrier();
            if (seq & 1) continue;
            size_t len = slot->len;
            ngx_msec_t written = slot->written;
            if (len == 0 || len > NGX_HTTP_KEYGATE_STATS_TEXT ||
                (ngx_msec_int_t)(ngx_current_msec - written) > NGX_HTTP_KEYGATE_STATS_STALE_MS) {
                break; /* never written, or its worker is gone */
            }
            ngx_memcpy(texts + total, slot->text, len);
            ngx_memory_barrier();
            if (slot->seq == seq) {
                total += len;
                break;
            }
        }
    }
    if (total == 0) {
        /* No zone (or no slot for this worker): this worker's own counters. */
        size_t len = 0;
        if (keygate_verifier_stats_text(src->verifier, (char *)texts, cap, &len) != KEYGATE_RESULT_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        total = len;
    }
    size_t need = 64 * 1024, len = 0;
    ngx_buf_t *b = NULL;
    keygate_result res = KEYGATE_RESULT_BUFFER_TOO_SMALL;
    for (int tries = 0; tries < 2 && res == KEYGATE_RESULT_BUFFER_TOO_SMALL; tries++) {
        b = ngx_create_temp_buf(r->pool, need);
        if (b == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
        res = keygate_stats_merge_prometheus(texts, total, (char *)b->pos, need, &len);
        if (res == KEYGATE_RESULT_BUFFER_TOO_SMALL) need = len;
    }
    if (res != KEYGATE_RESULT_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "keygate: metrics: %s", keygate_result_message(res));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    b->last = b->pos + len;
    b->last_buf = 1;
    b->last_in_chain = 1;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) return rc;
    ngx_chain_t out = {b, NULL};
    return ngx_http_output_filter(r, &out);
}

static char *ngx_http_keygate_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_core_loc_conf_t *clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    (void)cmd;
    ((ngx_http_keygate_loc_conf_t *)conf)->metrics = 1;
    clcf->handler = ngx_http_keygate_metrics_handler;
    return NGX_CONF_OK;
}

static ngx_int_t ngx_http_keygate_init_zone(ngx_shm_zone_t *zone, void *data) {
    ngx_slab_pool_t *shpool = (ngx_slab_pool_t *)zone->shm.addr;
    if (data) { /* a reload kept the zone: keep its slots */
        zone->data = data;
        return NGX_OK;
    }
    if (zone->shm.exists) {
        zone->data = shpool->data;
        return NGX_OK;
    }
    /* Half the zone for slots; the rest covers the slab allocator's own pages. */
    ngx_uint_t n = zone->shm.size / 2 / sizeof(ngx_http_keygate_slot_t);
    if (n == 0) return NGX_ERROR;
    ngx_http_keygate_stats_zone_t *z =
        ngx_slab_alloc(shpool, sizeof(*z) + (n - 1) * sizeof(ngx_http_keygate_slot_t));
    if (z == NULL) return NGX_ERROR;
    ngx_memzero(z, sizeof(*z) + (n - 1) * sizeof(ngx_http_keygate_slot_t));
    z->nslots = n;
    shpool->data = z;
    zone->data = z;
    return NGX_OK;
}

static ngx_int_t ngx_http_keygate_init(ngx_conf_t *cf) {
    ngx_http_keygate_main_conf_t *m = ngx_http_conf_get_module_main_conf(cf, ngx_http_keygate_module);
    if (m->zone_size == NGX_CONF_UNSET_SIZE) m->zone_size = 1024 * 1024;
    if (m->sources.nelts > 0) {
        ngx_str_t name = ngx_string("keygate_stats");
        m->zone = ngx_shared_memory_add(cf, &name, m->zone_size, &ngx_http_keygate_module);
        if (m->zone == NULL) return NGX_ERROR;
        m->zone->init = ngx_http_keygate_init_zone;
    }
    ngx_http_core_main_conf_t *cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    ngx_http_handler_pt *h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) return NGX_ERROR;
    *h = ngx_http_keygate_handler;
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_keygate_header_filter;
    return NGX_OK;
}
