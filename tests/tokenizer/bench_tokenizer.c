/*
 * tests/tokenizer/bench_tokenizer.c — tokenizer throughput benchmark (built, not run as a test).
 *
 * Usage: bench_tokenizer [MB per corpus (default 4)] [repetitions (default 3)]
 * Tokenizers: $DS_SHARED_DIR/fixtures/tokenizers/{deepseek-llm,deepseek-coder} GGUF vocabularies
 * and the deepseek-v3 tokenizer.json. Prints, per tokenizer, the load time and single-thread
 * tokenization speed (MB/s of input, best of the repetitions) on generated English prose, code,
 * CJK text and a mix of all three, plus detokenization speed. Times are wall clock; the CPU time
 * of the thread is shown too (they differ when other processes compete for the cores).
 */
#include "deepseek/tokenizer.h"
#include "tok_test_util.h"

#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of the calling thread: robust when other processes compete for the cores. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had",
    "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if",
    "more", "when", "will", "would", "who", "so", "no", "language", "model", "inference", "memory",
    "throughput", "tokenizer", "government", "international", "understanding", "development",
    "particularly", "experience", "environment", "responsibility", "characteristics", "Washington",
    "November", "Europe", "however", "although", "information", "technology", "significant",
};

static void gen_english(buf *b, size_t bytes, uint64_t seed)
{
    size_t nw = sizeof WORDS / sizeof WORDS[0];
    int sentence = 0;
    while (b->n < bytes) {
        const char *w = WORDS[tt_rand(&seed) % nw];
        char tmp[64];
        size_t l = strlen(w);
        memcpy(tmp, w, l + 1);
        if (sentence == 0 && tmp[0] >= 'a' && tmp[0] <= 'z')
            tmp[0] = (char)(tmp[0] - 32);
        puts_(b, tmp);
        sentence++;
        uint64_t r = tt_rand(&seed) % 100;
        if (sentence > 8 && r < 12) {
            puts_(b, r < 8 ? ". " : r < 10 ? "? " : ".\n\n");
            sentence = 0;
        } else if (r < 18) {
            puts_(b, ", ");
        } else if (r < 20) {
            char num[32];
            snprintf(num, sizeof num, " %u ", (unsigned)(tt_rand(&seed) % 100000));
            puts_(b, num);
        } else {
            puts_(b, " ");
        }
    }
}

static void gen_code(buf *b, size_t bytes, uint64_t seed)
{
    static const char *const LINES[] = {
        "static int parse_header(const uint8_t *buf, size_t len, struct header *out) {\n",
        "    if (len < sizeof(struct header)) return -EINVAL;\n",
        "    for (size_t i = 0; i < n_items; ++i) {\n",
        "        total += items[i].weight * scale_factor;\n",
        "    }\n",
        "    return memcmp(a->name, b->name, a->len) == 0 && a->len == b->len;\n",
        "}\n\n",
        "def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:\n",
        "    h = self.attention(self.norm1(x), mask=mask)  # residual\n",
        "    return x + self.mlp(self.norm2(x + h))\n\n",
        "const result = await fetch(`${baseUrl}/api/v1/items?limit=${limit}`, { method: 'GET' });\n",
        "if (!result.ok) { throw new Error(\"request failed: \" + result.status); }\n",
        "\tfmt.Printf(\"%d items in %v\\n\", len(items), time.Since(start))\n",
        "SELECT u.id, u.name, COUNT(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id;\n",
    };
    size_t nl = sizeof LINES / sizeof LINES[0];
    while (b->n < bytes)
        puts_(b, LINES[tt_rand(&seed) % nl]);
}

static void gen_cjk(buf *b, size_t bytes, uint64_t seed)
{
    while (b->n < bytes) {
        uint64_t r = tt_rand(&seed) % 100;
        char tmp[8];
        uint32_t cp;
        if (r < 70)
            cp = 0x4E00 + (uint32_t)(tt_rand(&seed) % 3000); /* common hanzi */
        else if (r < 80)
            cp = 0x3041 + (uint32_t)(tt_rand(&seed) % 80);   /* hiragana */
        else if (r < 85)
            cp = 0xAC00 + (uint32_t)(tt_rand(&seed) % 2000); /* hangul */
        else if (r < 95)
            cp = (r & 1) ? 0xFF0C : 0x3002;                   /* ，。 */
        else
            cp = '0' + (uint32_t)(r % 10);
        put(b, tmp, tt_put_utf8(tmp, cp));
    }
}

static void bench_one(const char *label, const char *path, size_t mb, int reps)
{
    if (!tt_exists(path)) {
        printf("%-16s SKIPPED (%s not found)\n", label, path);
        return;
    }
    double t0 = now_ms(), c0 = cpu_ms();
    ds_tokenizer *tok = NULL;
    if (ds_tokenizer_open(&tok, path) != DS_OK) {
        printf("%-16s open failed: %s\n", label, ds_last_error());
        return;
    }
    double load = now_ms() - t0, load_cpu = cpu_ms() - c0;
    printf("%-16s load %7.1f ms (cpu %.1f ms)  pre-tokenizer %s, %d tokens\n", label, load, load_cpu,
           ds_tokenizer_pre_name(tok), ds_tokenizer_n_vocab(tok));
    const char *names[] = { "english", "code", "cjk", "mixed" };
    size_t bytes = mb << 20;
    for (int k = 0; k < 4; k++) {
        buf b = { 0 };
        if (k == 0) gen_english(&b, bytes, 1);
        if (k == 1) gen_code(&b, bytes, 2);
        if (k == 2) gen_cjk(&b, bytes, 3);
        if (k == 3) {
            uint64_t s = 4;
            while (b.n < bytes) {
                buf part = { 0 };
                uint64_t r = tt_rand(&s) % 3;
                if (r == 0) gen_english(&part, 2000, tt_rand(&s));
                if (r == 1) gen_code(&part, 2000, tt_rand(&s));
                if (r == 2) gen_cjk(&part, 1000, tt_rand(&s));
                put(&b, part.p, part.n);
                free(part.p);
            }
        }
        size_t cap = b.n + 16;
        int32_t *ids = malloc(cap * sizeof *ids);
        char *back = malloc(b.n + 16);
        double best = 1e30, best_d = 1e30, best_cpu = 1e30;
        size_t n = 0, bl = 0;
        for (int r = 0; r < reps; r++) {
            double a = now_ms(), ac = cpu_ms();
            ds_tokenize(tok, b.p, b.n, DS_TOKENIZE_NO_BOS, ids, cap, &n);
            double e = now_ms() - a, ec = cpu_ms() - ac;
            if (e < best)
                best = e;
            if (ec < best_cpu)
                best_cpu = ec;
            a = now_ms();
            ds_detokenize(tok, ids, n, 0, back, b.n + 16, &bl);
            e = now_ms() - a;
            if (e < best_d)
                best_d = e;
        }
        bool rt = bl == b.n && memcmp(back, b.p, b.n) == 0;
        double mbytes = (double)b.n / 1048576.0;
        printf("  %-8s %5.2f MB  tokenize %7.2f MB/s (cpu %7.2f MB/s, %.2f bytes/token)  detokenize %7.1f MB/s  "
               "round-trip %s\n",
               names[k], mbytes, mbytes / (best / 1e3), mbytes / (best_cpu / 1e3), (double)b.n / (double)(n ? n : 1),
               mbytes / (best_d / 1e3), rt ? "ok" : "DIFF");
        free(ids);
        free(back);
        free(b.p);
    }
    ds_tokenizer_close(tok);
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t)atoi(argv[1]) : 4;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (mb == 0)
        mb = 1;
    if (reps <= 0)
        reps = 1;
    const char *sd = tt_shared_dir();
    char *p1 = tt_path(sd, "fixtures/tokenizers/deepseek-llm/ggml-vocab-deepseek-llm.gguf");
    char *p2 = tt_path(sd, "fixtures/tokenizers/deepseek-coder/ggml-vocab-deepseek-coder.gguf");
    char *p3 = tt_path(sd, "fixtures/tokenizers/deepseek-v3/tokenizer.json");
    bench_one("deepseek-llm", p1, mb, reps);
    bench_one("deepseek-coder", p2, mb, reps);
    bench_one("deepseek-v3", p3, mb, reps);
    free(p1);
    free(p2);
    free(p3);
    return 0;
}
