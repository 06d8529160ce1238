/*
 * examples/ds/main.c — the `ds` command-line program: dispatch to subcommands.
 *
 *   ds <command> [options]      ds <command> --help      ds --version
 */
#include "cli.h"

#include <string.h>

static const ds_cli_command k_commands[] = {
    {"info", "print a model's facts as one JSON object", ds_cmd_info},
    {"logits", "token ids in, logits out (JSON)", ds_cmd_logits},
    {"generate", "prefill a prompt and generate tokens", ds_cmd_generate},
    {"chat", "interactive chat with the model's chat template (stdin lines)", ds_cmd_chat},
    {"tokenize", "text in, token ids out (JSON array)", ds_cmd_tokenize},
    {"detokenize", "token ids in, text out", ds_cmd_detokenize},
    {"perplexity", "perplexity of the model on a text file", ds_cmd_perplexity},
    {"bench", "prefill/decode speed against the measured memory bandwidth", ds_cmd_bench},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ds <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(f, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f, "\nRun 'ds <command> --help' for the options of a command.\n"
               "Exit status: 0 ok, 1 usage error, 10+N when the library returned status -N.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return DS_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ds (libdeepseek) %s\n", ds_version_string());
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (strcmp(argv[1], k_commands[i].name) == 0)
            return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ds: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return DS_EXIT_USAGE;
}
