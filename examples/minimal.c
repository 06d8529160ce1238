/*
 * examples/minimal.c — the whole libdeepseek loop on one page: open a model, open a session,
 * feed a text prompt, step until the generation stops while printing its text, close.
 *
 *   minimal MODEL.gguf [PROMPT] [MAX_TOKENS]
 *
 * Build: cc minimal.c $(pkg-config --cflags --libs deepseek)
 */
#include <deepseek/deepseek.h>
#include <deepseek/session.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT] [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "The capital of France is";

    ds_model *model = NULL;
    if (ds_model_open(&model, argv[1], NULL) != DS_OK) { /* NULL: default model params */
        fprintf(stderr, "cannot open %s: %s\n", argv[1], ds_last_error());
        return 1;
    }

    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp); /* greedy sampling, 4096-token context */
    sp.max_tokens = argc > 3 ? (uint32_t)atoi(argv[3]) : 64;
    ds_session *session = NULL;
    ds_status st = ds_session_open(&session, model, &sp);

    /* Prefill: tokenize with the model's tokenizer (BOS as the model wants) and run it. */
    if (st == DS_OK)
        st = ds_session_feed_text(session, prompt, strlen(prompt), 0);
    if (st == DS_OK)
        fputs(prompt, stdout);

    /* Generate: each step samples a token, appends it and runs it; its text is then ready.
     * DS_DONE ends the loop: an end-of-sequence token, a stop string or max_tokens. */
    while (st == DS_OK) {
        int32_t token;
        st = ds_session_step(session, &token);
        const char *text;
        size_t len;
        while (ds_session_text(session, NULL, &text, &len) == DS_OK)
            fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    putchar('\n');

    int rc = 0;
    if (st < 0) { /* an error: the message names what went wrong */
        fprintf(stderr, "error: %s: %s\n", ds_status_string(st), ds_last_error());
        rc = 1;
    } else {
        fprintf(stderr, "[%u tokens, stopped: %s]\n", ds_session_n_generated(session),
                ds_stop_reason_name(ds_session_stop_reason(session)));
    }
    ds_session_close(session);
    ds_model_close(model);
    return rc;
}
