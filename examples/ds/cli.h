/*
 * examples/ds/cli.h — shared pieces of the `ds` command-line program: the subcommand table,
 * exit codes (derived from ds_status), option helpers and a tiny JSON writer.
 */
#ifndef DS_CLI_H
#define DS_CLI_H

#include <deepseek/deepseek.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes follow the status codes: 0 ok, 1 usage error, and 10 + (-status) for a failed
 * library call (e.g. DS_ERR_FORMAT = -3 exits with 13). */
#define DS_EXIT_USAGE 1
int ds_cli_exit_code(ds_status s);
/* Print "ds <cmd>: <status>: <message>" to stderr and return the exit code. */
int ds_cli_fail(const char *cmd, ds_status s);

/* Parse "--name value" style options. */
bool ds_cli_opt(int argc, char **argv, int *i, const char *shortname, const char *longname,
                const char **value);

/* JSON output helpers (stdout). */
void json_str(FILE *f, const char *s);
void json_strn(FILE *f, const char *s, size_t n);

/* "1,2,3" → malloc'ed token ids (NULL on a malformed list). */
int32_t *ds_cli_parse_tokens(const char *list, size_t *n);
/* "f32" | "f16" | "bf16" → ds_kv_type, -1 otherwise. */
int ds_cli_parse_kv_type(const char *v);
/* "mmap" | "read" | "hugepages" → ds_load_mode, -1 otherwise. */
int ds_cli_parse_load_mode(const char *v);

typedef struct ds_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} ds_cli_command;

int ds_cmd_info(int argc, char **argv);
int ds_cmd_logits(int argc, char **argv);
int ds_cmd_generate(int argc, char **argv);
int ds_cmd_chat(int argc, char **argv);
int ds_cmd_bench(int argc, char **argv);
int ds_cmd_perplexity(int argc, char **argv);
int ds_cmd_tokenize(int argc, char **argv);
int ds_cmd_detokenize(int argc, char **argv);

#endif
