/*
 * examples/host_loop.c — generation driven by a host's frame loop, as a game engine would run
 * it: each frame has a time budget (default 16 ms, i.e. 60 frames per second) shared with the
 * host's own work; the model advances only by as much as fits in what is left of the frame.
 *
 * Per frame:
 *   1. the host's own work (simulated: --work-ms, default 4 ms);
 *   2. while the measured cost of one more unit fits in the rest of the budget: feed the next
 *      chunk of the prompt (prefill is spread over frames too, --chunk tokens at a time) or,
 *      once the prompt is in, step one token and show its text;
 *   3. print the frame's statistics (stderr) and sleep until the frame ends.
 * The cost estimates are running averages of measured times, so the loop adapts to the
 * machine and the model. At least one unit runs per frame, so a model too slow for the budget
 * still advances (the frame is then reported as over budget).
 *
 *   host_loop -m MODEL [-p PROMPT] [-n MAX_TOKENS] [--budget-ms 16] [--work-ms 4]
 *             [--chunk 8] [--frames MAX_FRAMES]
 */
#include <deepseek/deepseek.h>
#include <deepseek/session.h>
#include <deepseek/tokenizer.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void sleep_until_ms(double t)
{
    double d = t - now_ms();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)(d / 1e3), (long)((d - (time_t)(d / 1e3) * 1e3) * 1e6)};
    nanosleep(&ts, NULL);
}

static void busy_ms(double ms) /* stands for the host's own per-frame work */
{
    double end = now_ms() + ms;
    while (now_ms() < end)
        ;
}

static int fail(const char *what, ds_status st)
{
    fprintf(stderr, "host_loop: %s: %s: %s\n", what, ds_status_string(st), ds_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *prompt = "Once upon a time";
    double budget = 16.0, work = 4.0;
    long max_tokens = 48, chunk = 8, max_frames = 100000;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "host_loop: option %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "-n")) max_tokens = atol(v);
        else if (!strcmp(a, "--budget-ms")) budget = atof(v);
        else if (!strcmp(a, "--work-ms")) work = atof(v);
        else if (!strcmp(a, "--chunk")) chunk = atol(v);
        else if (!strcmp(a, "--frames")) max_frames = atol(v);
        else {
            fprintf(stderr, "host_loop: unknown option %s\n", a);
            return 2;
        }
    }
    if (!path || budget <= 0 || work < 0 || chunk <= 0 || max_tokens <= 0) {
        fprintf(stderr, "usage: host_loop -m MODEL [-p PROMPT] [-n MAX_TOKENS] [--budget-ms MS]"
                        " [--work-ms MS] [--chunk N] [--frames N]\n");
        return 2;
    }

    ds_model *model = NULL;
    ds_status st = ds_model_open(&model, path, NULL);
    if (st != DS_OK)
        return fail("open model", st);
    const ds_tokenizer *tok = ds_model_tokenizer(model);
    size_t n_prompt = 0;
    int32_t *ids = NULL;
    if (!tok) {
        ds_model_close(model);
        return fail("tokenizer", DS_ERR_UNSUPPORTED);
    }
    ds_tokenize(tok, prompt, strlen(prompt), 0, NULL, 0, &n_prompt); /* size query */
    ids = malloc((n_prompt + 1) * sizeof *ids);
    if (!ids || (st = ds_tokenize(tok, prompt, strlen(prompt), 0, ids, n_prompt, &n_prompt)) != DS_OK) {
        free(ids);
        ds_model_close(model);
        return fail("tokenize", ids ? st : DS_ERR_NO_MEMORY);
    }

    ds_session_params sp;
    ds_session_default_params(&sp, sizeof sp);
    sp.n_ctx = (uint32_t)(n_prompt + (size_t)max_tokens + 1);
    sp.max_tokens = (uint32_t)max_tokens;
    ds_session *s = NULL;
    if ((st = ds_session_open(&s, model, &sp)) != DS_OK) {
        free(ids);
        ds_model_close(model);
        return fail("open session", st);
    }

    double est_feed = 0, est_step = 0; /* running averages in ms; 0 = not measured yet */
    size_t fed = 0;
    long frame = 0, over = 0, tokens = 0;
    bool done = false;
    fputs(prompt, stdout);
    double t_start = now_ms();
    while (!done && frame < max_frames) {
        double f0 = now_ms(), deadline = f0 + budget;
        busy_ms(work);
        int units = 0, chunks = 0, stepped = 0;
        double spent = 0;
        while (!done) {
            bool prefill = fed < n_prompt;
            double est = prefill ? est_feed : est_step;
            if (units > 0 && now_ms() + est > deadline)
                break; /* the next unit would not fit in this frame */
            double t0 = now_ms();
            if (prefill) {
                size_t n = n_prompt - fed < (size_t)chunk ? n_prompt - fed : (size_t)chunk;
                st = ds_session_feed(s, ids + fed, n);
                fed += n;
                chunks++;
            } else {
                int32_t t;
                st = ds_session_step(s, &t);
                const char *text;
                size_t len;
                while (ds_session_text(s, NULL, &text, &len) == DS_OK)
                    fwrite(text, 1, len, stdout);
                fflush(stdout);
                if (st == DS_OK || (st == DS_DONE && t >= 0))
                    stepped++;
            }
            double dt = now_ms() - t0;
            spent += dt;
            double *e = prefill ? &est_feed : &est_step;
            *e = *e == 0 ? dt : 0.8 * *e + 0.2 * dt;
            units++;
            if (st != DS_OK)
                done = true;
        }
        tokens += stepped;
        double used = now_ms() - f0;
        if (used > budget)
            over++;
        fprintf(stderr, "frame %ld: %d prefill chunks, %d tokens; model %.2f ms, frame %.2f/%.1f ms, "
                        "step ~%.2f ms%s\n",
                frame, chunks, stepped, spent, used, budget, est_step, used > budget ? " OVER" : "");
        frame++;
        sleep_until_ms(deadline);
    }
    double total = now_ms() - t_start;
    putchar('\n');
    int rc = 0;
    if (st < 0) {
        rc = fail("generate", st);
    } else {
        fprintf(stderr, "%ld tokens in %ld frames (%.1f s, %ld over budget); stopped: %s\n", tokens,
                frame, total / 1e3, over, ds_stop_reason_name(ds_session_stop_reason(s)));
    }
    ds_session_close(s);
    ds_model_close(model);
    free(ids);
    return rc;
}
