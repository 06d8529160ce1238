/*
 * examples/ds/cmd_chat.c — `ds chat`: an interactive conversation with a chat model.
 *
 * Each line read from stdin is a user message (or a /command). The conversation is rendered
 * with the model's chat template (ds_chat_format_tokens) and the session is brought to exactly
 * those tokens: the common prefix with what the session already holds is kept (rewind to it,
 * feed the rest), so each turn only runs its new tokens — and for DeepSeek-R1 the reasoning of
 * past turns is dropped from the context exactly as the official template drops it. The reply
 * is streamed; reasoning is shown dimmed on a terminal, as plain text otherwise, or hidden
 * with --hide-reasoning.
 *
 * After /load FILE the loaded tokens become the start of the conversation and later turns are
 * rendered after them (the template is prefix-stable: each turn is "<EOS>" closing the previous
 * assistant turn, then the turn's own text without BOS).
 */
#include "cli.h"

#include <deepseek/chat.h>
#include <deepseek/session.h>
#include <deepseek/tokenizer.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: ds chat -m MODEL [--template deepseek2|deepseek3|deepseek-r1] [--system TEXT]\n"
            "               [-n N] [--temp T] [--top-p P] [--top-k K] [--seed S] [-c CTX]\n"
            "               [-t THREADS] [--hide-reasoning]\n\n"
            "Chat with a model: each line of stdin is a user message; the reply is streamed to\n"
            "stdout. Commands: /reset (start over), /save FILE, /load FILE (the whole session),\n"
            "/help, /quit. Works with a pipe on stdin (no prompt, no colours then).\n"
            "  --template T       force a template (default: the model's own)\n"
            "  -n, --n-predict N  at most N tokens per reply (default 512)\n"
            "  --hide-reasoning   do not print the <think> reasoning of R1 models\n");
}

typedef struct chat_state {
    ds_model *model;
    const ds_tokenizer *tok;
    ds_session *s;
    ds_chat_template tmpl;
    ds_chat_message *msgs;    /* the conversation since the start or the last /load */
    size_t n_msgs, cap_msgs;
    int32_t *base;            /* tokens before msgs (from /load); n_base == 0 normally */
    size_t n_base;
    const char *system;
    bool hide_reasoning, color;
} chat_state;

static volatile sig_atomic_t g_generating;
static ds_session *volatile g_session;

static void on_sigint(int sig)
{
    (void)sig;
    if (g_generating && g_session)
        ds_session_cancel(g_session); /* an atomic flag: the reply stops at the next layer */
    else
        _exit(130);
}

static bool add_msg(chat_state *c, const char *role, const char *content, size_t len)
{
    if (c->n_msgs == c->cap_msgs) {
        size_t cap = c->cap_msgs ? 2 * c->cap_msgs : 16;
        ds_chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m)
            return false;
        c->msgs = m;
        c->cap_msgs = cap;
    }
    char *text = malloc(len + 1);
    if (!text)
        return false;
    memcpy(text, content, len);
    text[len] = '\0';
    c->msgs[c->n_msgs].role = role;
    c->msgs[c->n_msgs].content = text;
    c->n_msgs++;
    return true;
}

static void free_msgs(chat_state *c)
{
    for (size_t i = 0; i < c->n_msgs; i++)
        free((char *)c->msgs[i].content);
    c->n_msgs = 0;
}

/* Start a conversation: just the system prompt, if any. */
static void clear_msgs(chat_state *c)
{
    free_msgs(c);
    if (c->system)
        add_msg(c, "system", c->system, strlen(c->system));
}

/* The tokens the session must hold for the conversation (caller frees), or NULL. */
static int32_t *render(chat_state *c, size_t *n_out, ds_status *st)
{
    size_t n = 0;
    *st = ds_chat_format_tokens(c->tok, c->tmpl, c->msgs, c->n_msgs, 1, 0, NULL, 0, &n);
    if (*st != DS_ERR_BUFFER_TOO_SMALL && *st != DS_OK)
        return NULL;
    int32_t bos = ds_tokenizer_bos(c->tok), eos = ds_tokenizer_eos(c->tok);
    int32_t *ids = malloc((c->n_base + 1 + n + 1) * sizeof *ids);
    if (!ids) {
        *st = DS_ERR_NO_MEMORY;
        return NULL;
    }
    size_t k = c->n_base;
    if (c->n_base)
        memcpy(ids, c->base, c->n_base * sizeof *ids);
    if (c->n_base && eos >= 0 && ids[k - 1] != eos)
        ids[k++] = eos; /* close the loaded assistant turn */
    *st = ds_chat_format_tokens(c->tok, c->tmpl, c->msgs, c->n_msgs, 1, 0, ids + k, n + 1, &n);
    if (*st != DS_OK) {
        free(ids);
        return NULL;
    }
    if (c->n_base && n && ids[k] == bos) { /* a BOS only at the very start */
        memmove(ids + k, ids + k + 1, (n - 1) * sizeof *ids);
        n--;
    }
    *n_out = k + n;
    return ids;
}

/* Make the session hold exactly ids[0..n): keep the common prefix, run the rest. */
static ds_status sync_session(ds_session *s, const int32_t *ids, size_t n)
{
    const int32_t *have;
    size_t n_have, k = 0;
    ds_status st = ds_session_tokens(s, &have, &n_have);
    if (st != DS_OK)
        return st;
    while (k < n_have && k < n && have[k] == ids[k])
        k++;
    if (k == n && k > 0)
        k--; /* the last token runs again: fresh logits, a new generation */
    if (n > (size_t)ds_session_n_ctx(s))
        return DS_ERR_CONTEXT_FULL; /* checked before anything is rewound */
    if ((st = ds_session_rewind(s, n_have - k)) != DS_OK)
        return st;
    return ds_session_feed(s, ids + k, n - k);
}

static void show(chat_state *c, ds_text_kind kind, const char *text, size_t len, bool *dim)
{
    if (kind == DS_TEXT_REASONING && c->hide_reasoning)
        return;
    bool want_dim = kind == DS_TEXT_REASONING && c->color;
    if (want_dim != *dim) {
        fputs(want_dim ? "\033[2m" : "\033[0m", stdout);
        *dim = want_dim;
    }
    fwrite(text, 1, len, stdout);
}

/* One user turn: render, sync, stream the reply and add it to the conversation. */
static ds_status turn(chat_state *c, const char *line, size_t len)
{
    if (!add_msg(c, "user", line, len))
        return DS_ERR_NO_MEMORY;
    size_t n = 0;
    ds_status st;
    g_session = c->s;
    g_generating = 1; /* from here on Ctrl-C cancels the turn instead of quitting */
    int32_t *ids = render(c, &n, &st);
    if (ids)
        st = sync_session(c->s, ids, n);
    free(ids);
    if (st != DS_OK) {
        g_generating = 0;
        c->n_msgs--; /* forget the message that could not be sent */
        free((char *)c->msgs[c->n_msgs].content);
        if (st == DS_ERR_CANCELLED) {
            fprintf(stderr, "[cancelled]\n");
            return DS_OK;
        }
        return st;
    }
    char *answer = NULL;
    size_t n_answer = 0, cap_answer = 0;
    bool dim = false;
    for (;;) {
        int32_t tok;
        st = ds_session_step(c->s, &tok);
        ds_text_kind kind;
        const char *text;
        size_t tlen;
        while (ds_session_text(c->s, &kind, &text, &tlen) == DS_OK) {
            show(c, kind, text, tlen, &dim);
            if (kind == DS_TEXT_ANSWER) {
                if (n_answer + tlen > cap_answer) {
                    size_t cap = 2 * (n_answer + tlen) + 64;
                    char *a = realloc(answer, cap);
                    if (!a)
                        continue;
                    answer = a;
                    cap_answer = cap;
                }
                memcpy(answer + n_answer, text, tlen);
                n_answer += tlen;
            }
        }
        fflush(stdout);
        if (st != DS_OK)
            break;
    }
    g_generating = 0;
    if (dim)
        fputs("\033[0m", stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (st == DS_ERR_CANCELLED)
        fprintf(stderr, "[reply cancelled]\n");
    else if (st == DS_ERR_CONTEXT_FULL)
        fprintf(stderr, "[the context is full: /reset to start over]\n");
    add_msg(c, "assistant", answer ? answer : "", n_answer);
    free(answer);
    return st == DS_DONE || st == DS_ERR_CANCELLED || st == DS_ERR_CONTEXT_FULL ? DS_OK : st;
}

static void reset(chat_state *c)
{
    ds_session_reset(c->s);
    free(c->base);
    c->base = NULL;
    c->n_base = 0;
    clear_msgs(c);
}

static void load(chat_state *c, const char *path)
{
    ds_status st = ds_session_load(c->s, path);
    if (st != DS_OK) {
        fprintf(stderr, "[/load %s: %s: %s]\n", path, ds_status_string(st), ds_session_errmsg(c->s));
        return;
    }
    const int32_t *toks;
    size_t n;
    ds_session_tokens(c->s, &toks, &n);
    int32_t *base = malloc((n ? n : 1) * sizeof *base);
    if (!base) {
        fprintf(stderr, "[/load: out of memory]\n");
        return;
    }
    memcpy(base, toks, n * sizeof *base);
    free(c->base);
    c->base = base;
    c->n_base = n;
    if (c->n_base)
        free_msgs(c); /* a system prompt is part of the loaded tokens already */
    else
        clear_msgs(c);
    fprintf(stderr, "[loaded %s: %zu tokens]\n", path, n);
}

static const char *arg_of(const char *line, const char *cmd)
{
    size_t n = strlen(cmd);
    if (strncmp(line, cmd, n) != 0 || (line[n] != ' ' && line[n] != '\0'))
        return NULL;
    line += n;
    while (*line == ' ')
        line++;
    return line;
}

int ds_cmd_chat(int argc, char **argv)
{
    const char *model_path = NULL, *tmpl_name = NULL, *system = NULL;
    int threads = 0;
    long n_ctx = 0, n_predict = 512;
    bool hide = false;
    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            model_path = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--template", &v)) {
            tmpl_name = v;
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--system", &v)) {
            system = v;
        } else if (ds_cli_opt(argc, argv, &i, "-n", "--n-predict", &v)) {
            n_predict = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, "-c", "--ctx", &v)) {
            n_ctx = atol(v);
        } else if (ds_cli_opt(argc, argv, &i, "-t", "--threads", &v)) {
            threads = atoi(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--temp", &v)) {
            sp.temperature = (float)atof(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--top-p", &v)) {
            sp.top_p = (float)atof(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--top-k", &v)) {
            sp.top_k = atoi(v);
        } else if (ds_cli_opt(argc, argv, &i, NULL, "--seed", &v)) {
            sp.seed = strtoull(v, NULL, 10);
        } else if (strcmp(argv[i], "--hide-reasoning") == 0) {
            hide = true;
        } else {
            fprintf(stderr, "ds chat: unknown or incomplete option '%s'\n", argv[i]);
            help(stderr);
            return DS_EXIT_USAGE;
        }
    }
    ds_chat_template tmpl = DS_CHAT_TEMPLATE_AUTO;
    if (tmpl_name) {
        if (strcmp(tmpl_name, "deepseek2") == 0)
            tmpl = DS_CHAT_TEMPLATE_DEEPSEEK2;
        else if (strcmp(tmpl_name, "deepseek3") == 0)
            tmpl = DS_CHAT_TEMPLATE_DEEPSEEK3;
        else if (strcmp(tmpl_name, "deepseek-r1") == 0)
            tmpl = DS_CHAT_TEMPLATE_DEEPSEEK_R1;
        else
            tmpl = (ds_chat_template)-1;
    }
    if (!model_path || (int)tmpl < 0 || n_predict <= 0 || n_ctx < 0 || threads < 0) {
        fprintf(stderr, "ds chat: bad or missing arguments\n");
        help(stderr);
        return DS_EXIT_USAGE;
    }
    ds_model_params mp;
    ds_model_default_params(&mp, sizeof mp);
    mp.n_threads = threads;
    chat_state c;
    memset(&c, 0, sizeof c);
    ds_status st = ds_model_open(&c.model, model_path, &mp);
    if (st != DS_OK)
        return ds_cli_fail("chat", st);
    c.tok = ds_model_tokenizer(c.model);
    if (!c.tok) {
        fprintf(stderr, "ds chat: the model has no tokenizer\n");
        ds_model_close(c.model);
        return ds_cli_exit_code(DS_ERR_UNSUPPORTED);
    }
    if (tmpl == DS_CHAT_TEMPLATE_AUTO && (st = ds_chat_detect(c.tok, &tmpl)) != DS_OK) {
        fprintf(stderr, "ds chat: %s (use --template)\n", ds_last_error());
        ds_model_close(c.model);
        return ds_cli_exit_code(st);
    }
    c.tmpl = tmpl;
    c.system = system;
    c.hide_reasoning = hide;
    bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    c.color = tty;
    sp.n_ctx = (uint32_t)n_ctx;
    sp.max_tokens = (uint32_t)n_predict;
    sp.reasoning = tmpl_name ? (tmpl == DS_CHAT_TEMPLATE_DEEPSEEK_R1 ? DS_REASONING_MODE_ON
                                                                      : DS_REASONING_MODE_OFF)
                             : DS_REASONING_MODE_AUTO;
    if ((st = ds_session_open(&c.s, c.model, &sp)) != DS_OK) {
        ds_model_close(c.model);
        return ds_cli_fail("chat", st);
    }
    clear_msgs(&c);
    signal(SIGINT, on_sigint);
    if (tty)
        fprintf(stderr, "ds chat: %s template, %u-token context. /help for commands.\n",
                ds_chat_template_name(tmpl), ds_session_n_ctx(c.s));

    int rc = 0;
    char *line = NULL;
    size_t line_cap = 0;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        const char *arg;
        if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0) {
            break;
        } else if (strcmp(line, "/help") == 0) {
            fprintf(stderr, "commands: /reset, /save FILE, /load FILE, /quit\n");
        } else if (strcmp(line, "/reset") == 0) {
            reset(&c);
            fprintf(stderr, "[conversation reset]\n");
        } else if ((arg = arg_of(line, "/save")) != NULL) {
            if (!*arg)
                fprintf(stderr, "[usage: /save FILE]\n");
            else if ((st = ds_session_save(c.s, arg)) != DS_OK)
                fprintf(stderr, "[/save %s: %s: %s]\n", arg, ds_status_string(st),
                        ds_session_errmsg(c.s));
            else
                fprintf(stderr, "[saved %zu tokens to %s]\n", ds_session_n_tokens(c.s), arg);
        } else if ((arg = arg_of(line, "/load")) != NULL) {
            if (!*arg)
                fprintf(stderr, "[usage: /load FILE]\n");
            else
                load(&c, arg);
        } else if (line[0] == '/' && line[1] != '/' && strchr(line, ' ') == NULL) {
            fprintf(stderr, "[unknown command %s; /help lists them]\n", line);
        } else {
            const char *text = line[0] == '/' ? line + 1 : line; /* "//x" sends "/x" */
            st = turn(&c, text, strlen(text));
            if (st == DS_ERR_CONTEXT_FULL) {
                fprintf(stderr, "[the conversation does not fit the context: /reset]\n");
            } else if (st != DS_OK) {
                rc = ds_cli_fail("chat", st);
                break;
            }
        }
    }
    free(line);
    free_msgs(&c);
    free(c.msgs);
    free(c.base);
    g_session = NULL;
    ds_session_close(c.s);
    ds_model_close(c.model);
    return rc;
}
