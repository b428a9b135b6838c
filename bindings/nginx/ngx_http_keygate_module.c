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
 *   keygate_key_source header:Authorization:Bearer header:X-API-Key;
 *   keygate_realm NAME;                                (default "keygate")
 *   keygate_metrics;                                   (location: Prometheus text)
 *
 * Variables: $keygate_principal, $keygate_key_id, $keygate_outcome.
 * The presented key is never logged.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "keygate.h"

/* One set of artifact files and, per worker, the verifier loaded from them. */
typedef struct {
    ngx_str_t trust, snapshot, revocations;
    ngx_msec_t interval;
    keygate_verifier *verifier;
    time_t mtime[3];
    off_t size[3];
    ngx_event_t timer;
    ngx_log_t *log;
} ngx_http_keygate_source_t;

typedef struct {
    ngx_array_t sources; /* of ngx_http_keygate_source_t * */
} ngx_http_keygate_main_conf_t;

typedef struct {
    ngx_http_keygate_source_t *source;
    ngx_str_t trust, snapshot, revocations;
    ngx_msec_t interval;
} ngx_http_keygate_srv_conf_t;

typedef struct {
    ngx_str_t header; /* e.g. "Authorization" */
    ngx_str_t scheme; /* e.g. "Bearer"; empty: the whole value */
} ngx_http_keygate_key_source_t;

typedef struct {
    ngx_flag_t enable;
    ngx_str_t scope;
    ngx_str_t realm;
    ngx_array_t *key_sources;
    ngx_flag_t metrics;
} ngx_http_keygate_loc_conf_t;

typedef struct {
    keygate_verdict verdict;
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
    {ngx_string("keygate_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, ngx_http_keygate_metrics,
     NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},
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
        s->interval = owner->interval;
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
    c->key_sources = NGX_CONF_UNSET_PTR;
    return c;
}

static ngx_int_t ngx_http_keygate_push_source(ngx_pool_t *pool, ngx_array_t *a, ngx_str_t *spec) {
    /* header:NAME[:SCHEME] */
    if (spec->len <= 7 || ngx_strncmp(spec->data, "header:", 7) != 0) return NGX_ERROR;
    ngx_http_keygate_key_source_t *ks = ngx_array_push(a);
    if (ks == NULL) return NGX_ERROR;
    u_char *name = spec->data + 7, *end = spec->data + spec->len;
    u_char *colon = ngx_strlchr(name, end, ':');
    ks->header.data = name;
    ks->header.len = (colon ? colon : end) - name;
    ks->scheme.data = colon ? colon + 1 : NULL;
    ks->scheme.len = colon ? (size_t)(end - colon - 1) : 0;
    (void)pool;
    return ks->header.len ? NGX_OK : NGX_ERROR;
}

static char *ngx_http_keygate_key_source(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) {
    ngx_http_keygate_loc_conf_t *lc = conf;
    ngx_str_t *args = cf->args->elts;
    (void)cmd;
    if (lc->key_sources != NGX_CONF_UNSET_PTR) return "is duplicate";
    lc->key_sources = ngx_array_create(cf->pool, cf->args->nelts, sizeof(ngx_http_keygate_key_source_t));
    if (lc->key_sources == NULL) return NGX_CONF_ERROR;
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        if (ngx_http_keygate_push_source(cf->pool, lc->key_sources, &args[i]) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid key source \"%V\" (want header:NAME[:SCHEME])", &args[i]);
            return NGX_CONF_ERROR;
        }
    }
    return NGX_CONF_OK;
}

static char *ngx_http_keygate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) {
    ngx_http_keygate_loc_conf_t *prev = parent, *conf = child;
    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->metrics, prev->metrics, 0);
    ngx_conf_merge_str_value(conf->scope, prev->scope, "");
    ngx_conf_merge_str_value(conf->realm, prev->realm, "keygate");
    ngx_conf_merge_ptr_value(conf->key_sources, prev->key_sources, NULL);
    if (conf->key_sources == NULL) {
        static ngx_str_t defaults[] = {ngx_string("header:Authorization:Bearer"), ngx_string("header:X-API-Key")};
        conf->key_sources = ngx_array_create(cf->pool, 2, sizeof(ngx_http_keygate_key_source_t));
        if (conf->key_sources == NULL) return NGX_CONF_ERROR;
        for (int i = 0; i < 2; i++) {
            if (ngx_http_keygate_push_source(cf->pool, conf->key_sources, &defaults[i]) != NGX_OK) return NGX_CONF_ERROR;
        }
    }
    return NGX_CONF_OK;
}

/* ------------------------------------------------------- artifact reload */

/* Reads `path` into a pool-free malloc'd buffer; NULL on error. */
static u_char *ngx_http_keygate_read(ngx_str_t *path, size_t *len, ngx_log_t *log, time_t *mtime, off_t *size) {
    char name[NGX_MAX_PATH];
    if (path->len >= sizeof(name)) return NULL;
    ngx_memcpy(name, path->data, path->len);
    name[path->len] = 0;
    ngx_file_info_t fi;
    if (ngx_file_info(name, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "keygate: cannot stat \"%s\"", name);
        return NULL;
    }
    if (mtime && *mtime == ngx_file_mtime(&fi) && *size == ngx_file_size(&fi)) return NULL; /* unchanged */
    ngx_fd_t fd = ngx_open_file(name, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "keygate: cannot open \"%s\"", name);
        return NULL;
    }
    size_t n = (size_t)ngx_file_size(&fi);
    u_char *buf = ngx_alloc(n ? n : 1, log);
    ssize_t got = buf ? read(fd, buf, n) : -1;
    ngx_close_file(fd);
    if (got < 0 || (size_t)got != n) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno, "keygate: cannot read \"%s\"", name);
        ngx_free(buf);
        return NULL;
    }
    if (mtime) {
        *mtime = ngx_file_mtime(&fi);
        *size = ngx_file_size(&fi);
    }
    *len = n;
    return buf;
}

typedef keygate_result (*ngx_http_keygate_loader_pt)(keygate_verifier *, const uint8_t *, size_t);

static void ngx_http_keygate_load(ngx_http_keygate_source_t *s, ngx_str_t *path, int slot,
                                  ngx_http_keygate_loader_pt load, const char *what) {
    size_t len;
    if (path->len == 0) return;
    u_char *buf = ngx_http_keygate_read(path, &len, s->log, &s->mtime[slot], &s->size[slot]);
    if (buf == NULL) return;
    keygate_result r = load(s->verifier, buf, len);
    ngx_free(buf);
    if (r != KEYGATE_RESULT_OK) {
        /* Refused: the current state is kept. Retry the file on its next change. */
        ngx_log_error(NGX_LOG_ERR, s->log, 0, "keygate: %s \"%V\" refused: %s", what, path, keygate_result_message(r));
    } else {
        ngx_log_error(NGX_LOG_INFO, s->log, 0, "keygate: %s \"%V\" loaded", what, path);
    }
}

static void ngx_http_keygate_reload(ngx_http_keygate_source_t *s) {
    ngx_http_keygate_load(s, &s->trust, 0, keygate_verifier_load_trust, "trust");
    ngx_http_keygate_load(s, &s->snapshot, 1, keygate_verifier_load_snapshot, "snapshot");
    ngx_http_keygate_load(s, &s->revocations, 2, keygate_verifier_load_revocations, "revocations");
}

static void ngx_http_keygate_timer(ngx_event_t *ev) {
    ngx_http_keygate_source_t *s = ev->data;
    if (ngx_exiting || ngx_quit || ngx_terminate) return;
    ngx_http_keygate_reload(s);
    ngx_add_timer(ev, s->interval);
}

static ngx_int_t ngx_http_keygate_init_process(ngx_cycle_t *cycle) {
    ngx_http_keygate_main_conf_t *m = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_keygate_module);
    if (m == NULL) return NGX_OK;
    ngx_http_keygate_source_t **ss = m->sources.elts;
    for (ngx_uint_t i = 0; i < m->sources.nelts; i++) {
        ngx_http_keygate_source_t *s = ss[i];
        s->log = cycle->log;
        size_t len;
        u_char *trust = ngx_http_keygate_read(&s->trust, &len, cycle->log, NULL, NULL);
        if (trust == NULL) continue; /* logged; requests answer 503 until it loads */
        keygate_result r = keygate_verifier_new(trust, len, &s->verifier);
        ngx_free(trust);
        if (r != KEYGATE_RESULT_OK) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "keygate: trust \"%V\" refused: %s", &s->trust,
                          keygate_result_message(r));
            continue;
        }
        /* The anchor is loaded; let the timer pick up later trust changes. */
        ngx_http_keygate_reload(s);
        s->timer.handler = ngx_http_keygate_timer;
        s->timer.data = s;
        s->timer.log = cycle->log;
        s->timer.cancelable = 1;
        ngx_add_timer(&s->timer, s->interval);
    }
    return NGX_OK;
}

/* ---------------------------------------------------------- the request */

static ngx_table_elt_t *ngx_http_keygate_find_header(ngx_http_request_t *r, ngx_str_t *name) {
    ngx_list_part_t *part = &r->headers_in.headers.part;
    ngx_table_elt_t *h = part->elts;
    for (ngx_uint_t i = 0;; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) return NULL;
            part = part->next;
            h = part->elts;
            i = 0;
        }
        if (h[i].key.len == name->len && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0) return &h[i];
    }
}

static ngx_int_t ngx_http_keygate_key(ngx_http_request_t *r, ngx_http_keygate_loc_conf_t *lc, ngx_str_t *key) {
    ngx_http_keygate_key_source_t *ks = lc->key_sources->elts;
    for (ngx_uint_t i = 0; i < lc->key_sources->nelts; i++) {
        ngx_table_elt_t *h = ngx_http_keygate_find_header(r, &ks[i].header);
        if (h == NULL) continue;
        u_char *p = h->value.data, *end = h->value.data + h->value.len;
        if (ks[i].scheme.len) {
            if (h->value.len <= ks[i].scheme.len || ngx_strncasecmp(p, ks[i].scheme.data, ks[i].scheme.len) != 0 ||
                p[ks[i].scheme.len] != ' ') {
                continue;
            }
            p += ks[i].scheme.len;
        }
        while (p < end && *p == ' ') p++;
        while (end > p && end[-1] == ' ') end--;
        if (p == end) continue;
        key->data = p;
        key->len = end - p;
        return NGX_OK;
    }
    return NGX_DECLINED;
}

static ngx_int_t ngx_http_keygate_challenge(ngx_http_request_t *r, ngx_http_keygate_loc_conf_t *lc, ngx_int_t status,
                                            const char *error, const char *description) {
    ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    size_t len = sizeof("Bearer realm=\"\", error=\"\", error_description=\"\"") + lc->realm.len + 64 + 128;
    u_char *v = ngx_pnalloc(r->pool, len);
    if (v == NULL) return NGX_HTTP_INTERNAL_SERVER_ERROR;
    u_char *e = error ? ngx_snprintf(v, len, "Bearer realm=\"%V\", error=\"%s\", error_description=\"%s\"",
                                     &lc->realm, error, description)
                      : ngx_snprintf(v, len, "Bearer realm=\"%V\"", &lc->realm);
    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value.data = v;
    h->value.len = e - v;
    r->headers_out.www_authenticate = h;
    return status;
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
    ngx_str_t key;
    if (ngx_http_keygate_key(r, lc, &key) != NGX_OK) {
        return ngx_http_keygate_challenge(r, lc, NGX_HTTP_UNAUTHORIZED, NULL, NULL);
    }
    if (sc->source == NULL || sc->source->verifier == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "keygate: no artifacts loaded");
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    keygate_result res = keygate_verifier_verify(sc->source->verifier, (const char *)key.data, key.len,
                                                 (const char *)lc->scope.data, lc->scope.len, 0, &ctx->verdict);
    if (res != KEYGATE_RESULT_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "keygate: verify failed: %s", keygate_result_message(res));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ctx->decided = 1;
    switch (ctx->verdict.outcome) {
    case KEYGATE_OUTCOME_VALID:
    case KEYGATE_OUTCOME_VALID_DEPRECATED:
        return NGX_OK;
    case KEYGATE_OUTCOME_INSUFFICIENT_SCOPE:
        return ngx_http_keygate_challenge(r, lc, NGX_HTTP_FORBIDDEN, "insufficient_scope",
                                          "the key lacks the required scope");
    case KEYGATE_OUTCOME_STALE:
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    default:
        return ngx_http_keygate_challenge(r, lc, NGX_HTTP_UNAUTHORIZED, "invalid_token",
                                          keygate_outcome_name(ctx->verdict.outcome));
    }
}

/* Deprecation (RFC 9745) and Sunset (RFC 8594) on responses to rotated keys. */
static ngx_int_t ngx_http_keygate_header_filter(ngx_http_request_t *r) {
    ngx_http_keygate_ctx_t *ctx = ngx_http_get_module_ctx(r->main, ngx_http_keygate_module);
    if (ctx && ctx->decided && ctx->verdict.outcome == KEYGATE_OUTCOME_VALID_DEPRECATED && r == r->main) {
        ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
        u_char *v = ngx_pnalloc(r->pool, NGX_INT64_LEN + 2);
        if (h && v) {
            h->hash = 1;
            ngx_str_set(&h->key, "Deprecation");
            h->value.data = v;
            h->value.len = ngx_sprintf(v, "@%uL", ctx->verdict.deprecated_at) - v;
        }
        if (ctx->verdict.sunset_at) {
            h = ngx_list_push(&r->headers_out.headers);
            v = ngx_pnalloc(r->pool, sizeof("Mon, 28 Sep 1970 06:00:00 GMT"));
            if (h && v) {
                h->hash = 1;
                ngx_str_set(&h->key, "Sunset");
                h->value.data = v;
                h->value.len = ngx_http_time(v, (time_t)ctx->verdict.sunset_at) - v;
            }
        }
    }
    return ngx_http_next_header_filter(r);
}

/* ---------------------------------------------------------- variables */

static ngx_int_t ngx_http_keygate_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data) {
    ngx_http_keygate_ctx_t *ctx = ngx_http_get_module_ctx(r->main, ngx_http_keygate_module);
    if (ctx == NULL || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }
    u_char *p;
    switch (data) {
    case 0: /* principal */
        v->len = ngx_strlen(ctx->verdict.principal);
        v->data = (u_char *)ctx->verdict.principal;
        break;
    case 1: /* key id */
        p = ngx_pnalloc(r->pool, 32);
        if (p == NULL) return NGX_ERROR;
        ngx_hex_dump(p, ctx->verdict.key_id, 16);
        v->len = 32;
        v->data = p;
        break;
    default: /* outcome */
        v->data = (u_char *)keygate_outcome_name(ctx->verdict.outcome);
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

static ngx_int_t ngx_http_keygate_metrics_handler(ngx_http_request_t *r) {
    ngx_http_keygate_srv_conf_t *sc = ngx_http_get_module_srv_conf(r, ngx_http_keygate_module);
    if (sc->source == NULL || sc->source->verifier == NULL) return NGX_HTTP_SERVICE_UNAVAILABLE;
    size_t need = 0, len = 0;
    if (keygate_verifier_stats_prometheus_size(sc->source->verifier, &need) != KEYGATE_RESULT_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_buf_t *b = ngx_create_temp_buf(r->pool, need);
    if (b == NULL ||
        keygate_verifier_stats_prometheus(sc->source->verifier, (char *)b->pos, need, &len) != KEYGATE_RESULT_OK) {
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

static ngx_int_t ngx_http_keygate_init(ngx_conf_t *cf) {
    ngx_http_core_main_conf_t *cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    ngx_http_handler_pt *h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) return NGX_ERROR;
    *h = ngx_http_keygate_handler;
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_keygate_header_filter;
    return NGX_OK;
}
