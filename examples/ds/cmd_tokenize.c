/*
 * examples/ds/cmd_tokenize.c — `ds tokenize` (text → JSON array of ids) and `ds detokenize`
 * (ids → text), on a model file, a vocab-only GGUF or a Hugging Face tokenizer.json.
 */
#include "cli.h"

#include <deepseek/tokenizer.h>

#include <stdlib.h>
#include <string.h>

static void help_tok(FILE *f)
{
    fprintf(f, "usage: ds tokenize -m MODEL_OR_TOKENIZER [--special] [--no-bos|--bos] [TEXT]\n\n"
               "Print the token ids of TEXT (stdin when omitted) as a JSON array.\n"
               "  -m PATH      a GGUF model or vocab file, a tokenizer.json or its directory\n"
               "  --special    match special/added tokens written in the text\n"
               "  --bos        add BOS; --no-bos: do not (default: the tokenizer's setting)\n");
}

static void help_detok(FILE *f)
{
    fprintf(f, "usage: ds detokenize -m MODEL_OR_TOKENIZER [--special] [IDS]\n\n"
               "Print the text of comma-separated token ids (IDS, or a JSON array / list on stdin).\n"
               "  --special    render special tokens (hidden by default)\n");
}

static char *read_stdin(size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + len, 1, cap - len, stdin);
        len += r;
        if (len < cap) {
            if (ferror(stdin)) {
                free(buf);
                return NULL;
            }
            break;
        }
        char *nb = realloc(buf, cap *= 2);
        if (!nb) {
            free(buf);
            return NULL;
        }
        buf = nb;
    }
    *n = len;
    return buf;
}

int ds_cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL, *text = NULL;
    uint32_t flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help_tok(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            path = v;
        } else if (strcmp(argv[i], "--special") == 0) {
            flags |= DS_TOKENIZE_SPECIAL;
        } else if (strcmp(argv[i], "--bos") == 0) {
            flags |= DS_TOKENIZE_ADD_BOS;
        } else if (strcmp(argv[i], "--no-bos") == 0) {
            flags |= DS_TOKENIZE_NO_BOS;
        } else if (argv[i][0] != '-' && !text) {
            text = argv[i];
        } else {
            fprintf(stderr, "ds tokenize: unknown option '%s'\n", argv[i]);
            help_tok(stderr);
            return DS_EXIT_USAGE;
        }
    }
    if (!path || ((flags & DS_TOKENIZE_ADD_BOS) && (flags & DS_TOKENIZE_NO_BOS))) {
        help_tok(stderr);
        return DS_EXIT_USAGE;
    }
    char *owned = NULL;
    size_t len;
    if (text) {
        len = strlen(text);
    } else {
        owned = read_stdin(&len);
        if (!owned) {
            fprintf(stderr, "ds tokenize: cannot read stdin\n");
            return DS_EXIT_USAGE;
        }
        text = owned;
    }
    ds_tokenizer *tok = NULL;
    ds_status s = ds_tokenizer_open(&tok, path);
    if (s != DS_OK) {
        free(owned);
        return ds_cli_fail("tokenize", s);
    }
    size_t need = 0;
    s = ds_tokenize(tok, text, len, flags, NULL, 0, &need);
    int32_t *ids = NULL;
    if (s == DS_OK || s == DS_ERR_BUFFER_TOO_SMALL) {
        ids = malloc((need ? need : 1) * sizeof *ids);
        s = ids ? ds_tokenize(tok, text, len, flags, ids, need, &need) : DS_ERR_NO_MEMORY;
    }
    int rc = 0;
    if (s == DS_OK) {
        printf("[");
        for (size_t i = 0; i < need; i++)
            printf("%s%d", i ? ", " : "", ids[i]);
        printf("]\n");
    } else {
        rc = ds_cli_fail("tokenize", s);
    }
    free(ids);
    free(owned);
    ds_tokenizer_close(tok);
    return rc;
}

int ds_cmd_detokenize(int argc, char **argv)
{
    const char *path = NULL, *list = NULL;
    uint32_t flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help_detok(stdout);
            return 0;
        } else if (ds_cli_opt(argc, argv, &i, "-m", "--model", &v)) {
            path = v;
        } else if (strcmp(argv[i], "--special") == 0) {
            flags |= DS_DETOKENIZE_SPECIAL;
        } else if (argv[i][0] != '-' && !list) {
            list = argv[i];
        } else {
            fprintf(stderr, "ds detokenize: unknown option '%s'\n", argv[i]);
            help_detok(stderr);
            return DS_EXIT_USAGE;
        }
    }
    if (!path) {
        help_detok(stderr);
        return DS_EXIT_USAGE;
    }
    char *owned = NULL;
    if (!list) {
        size_t n;
        owned = read_stdin(&n);
        if (!owned)
            return DS_EXIT_USAGE;
        char *z = realloc(owned, n + 1);
        if (!z) {
            free(owned);
            return DS_EXIT_USAGE;
        }
        owned = z;
        owned[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if (owned[i] == '[' || owned[i] == ']' || owned[i] == '\n')
                owned[i] = ' ';
        list = owned;
    }
    while (*list == ' ')
        list++;
    size_t n = 0;
    int32_t *ids = *list ? ds_cli_parse_tokens(list, &n) : calloc(1, sizeof *ids);
    if (!ids) {
        fprintf(stderr, "ds detokenize: expected comma-separated token ids\n");
        free(owned);
        return DS_EXIT_USAGE;
    }
    ds_tokenizer *tok = NULL;
    ds_status s = ds_tokenizer_open(&tok, path);
    int rc = 0;
    if (s == DS_OK) {
        size_t need = 0;
        s = ds_detokenize(tok, ids, n, flags, NULL, 0, &need);
        if (s == DS_OK || s == DS_ERR_BUFFER_TOO_SMALL) {
            char *buf = malloc(need + 1);
            s = buf ? ds_detokenize(tok, ids, n, flags, buf, need + 1, &need) : DS_ERR_NO_MEMORY;
            if (s == DS_OK) {
                fwrite(buf, 1, need, stdout);
                putchar('\n');
            }
            free(buf);
        }
    }
    if (s != DS_OK)
        rc = ds_cli_fail("detokenize", s);
    free(ids);
    free(owned);
    ds_tokenizer_close(tok);
    return rc;
}
