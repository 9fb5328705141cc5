/* audiogen: the camera simulator's time-coded sound (tests/common/audiocode.h)
 * as raw s16le mono on stdout, for the audio judge's tests (pipe it into
 * ffmpeg -f s16le).  Output sample i holds content sample first + i, moved by
 * every --skip (a hole: jump forward) and --repeat (an overlap: jump back)
 * whose AT is <= i.  Exit: 0 done, 1 write error, 2 bad usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audiocode.h"

#define AUDIOGEN_MAX_JUMPS 256        /* --skip and --repeat options together */
#define AUDIOGEN_CHUNK 4096           /* samples written per fwrite */
#define AUDIOGEN_MAX_RATE 384000

struct jump {
        uint64_t at;                  /* output sample offset where it applies */
        int64_t delta;                /* content moves by this much: > 0 hole, < 0 overlap */
};

struct options {
        int rate;
        uint64_t first, samples;
        bool has_rate, has_samples;
        struct jump jumps[AUDIOGEN_MAX_JUMPS];
        size_t n_jumps;
};

static void usage(FILE *out)
{
        fputs("usage: audiogen --rate R --samples K [--first-sample N] [--skip AT:COUNT]...\n"
              "                [--repeat AT:COUNT]...\n"
              "Writes K samples of the camera simulator's audio code as raw s16le mono.\n"
              "  --rate R           sample rate, a multiple of 100 (8000, 16000, 48000, ...)\n"
              "  --first-sample N   content sample of the first output sample (default 0)\n"
              "  --samples K        how many samples to write\n"
              "  --skip AT:COUNT    from output sample AT on, jump COUNT samples ahead (a hole)\n"
              "  --repeat AT:COUNT  from output sample AT on, go COUNT samples back (an overlap)\n",
              out);
}

static int bad_usage(const char *what, const char *arg)
{
        fprintf(stderr, "audiogen: %s%s%s\nTry 'audiogen --help'.\n", what, arg ? ": " : "", arg ? arg : "");
        return 2;
}

static int parse_u64(const char *s, const char *end_chars, uint64_t *v, const char **end)
{
        unsigned long long x;
        char *e;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        x = strtoull(s, &e, 10);
        if (errno || (*e && !strchr(end_chars, *e)) || x > INT64_MAX)
                return -EINVAL;
        *v = x;
        if (end)
                *end = e;
        return 0;
}

/* AT:COUNT into a jump of sign * COUNT. */
static int parse_jump(const char *s, int sign, struct options *o)
{
        uint64_t at, count;
        const char *e;

        if (o->n_jumps >= AUDIOGEN_MAX_JUMPS)
                return -E2BIG;
        if (parse_u64(s, ":", &at, &e) || *e != ':' || parse_u64(e + 1, "", &count, NULL))
                return -EINVAL;
        o->jumps[o->n_jumps++] = (struct jump){ .at = at, .delta = sign * (int64_t)count };
        return 0;
}

static int cmp_jump(const void *a, const void *b)
{
        const struct jump *x = a, *y = b;

        return x->at < y->at ? -1 : x->at > y->at;
}

/* 0 to generate, or the exit code. */
static int parse_args(int argc, char **argv, struct options *o)
{
        static const struct option longopts[] = {
                { "rate", required_argument, NULL, 'r' },
                { "first-sample", required_argument, NULL, 'f' },
                { "samples", required_argument, NULL, 'n' },
                { "skip", required_argument, NULL, 's' },
                { "repeat", required_argument, NULL, 'p' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        uint64_t rate;
        int c;

        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        if (parse_u64(optarg, "", &rate, NULL) || rate < 100 || rate > AUDIOGEN_MAX_RATE ||
                            rate % 100)
                                return bad_usage("bad --rate (a multiple of 100 is needed)", optarg);
                        o->rate = (int)rate;
                        o->has_rate = true;
                        break;
                case 'f':
                        if (parse_u64(optarg, "", &o->first, NULL))
                                return bad_usage("bad --first-sample", optarg);
                        break;
                case 'n':
                        if (parse_u64(optarg, "", &o->samples, NULL))
                                return bad_usage("bad --samples", optarg);
                        o->has_samples = true;
                        break;
                case 's':
                case 'p':
                        if (parse_jump(optarg, c == 's' ? 1 : -1, o))
                                return bad_usage(c == 's' ? "bad --skip (AT:COUNT)" : "bad --repeat (AT:COUNT)",
                                                 optarg);
                        break;
                case 'h': usage(stdout); return -1;
                default: fputs("Try 'audiogen --help'.\n", stderr); return 2;
                }
        }
        if (optind < argc)
                return bad_usage("unexpected argument", argv[optind]);
        if (!o->has_rate || !o->has_samples)
                return bad_usage("--rate and --samples are required", NULL);
        qsort(o->jumps, o->n_jumps, sizeof(o->jumps[0]), cmp_jump);
        return 0;
}

/* Content sample of every output sample, checked before anything is written. */
static int check_jumps(const struct options *o)
{
        int64_t content = (int64_t)o->first;

        for (size_t i = 0; i < o->n_jumps; i++) {
                content += (int64_t)o->jumps[i].at - (i ? (int64_t)o->jumps[i - 1].at : 0) + o->jumps[i].delta;
                if (content < 0) {
                        fprintf(stderr, "audiogen: --repeat at %" PRIu64 " goes before content sample 0\n",
                                o->jumps[i].at);
                        return 2;
                }
        }
        return 0;
}

static int generate(const struct options *o)
{
        int16_t pcm[AUDIOGEN_CHUNK];
        uint8_t le[2 * AUDIOGEN_CHUNK];
        uint64_t content = o->first, i = 0;
        size_t next_jump = 0;

        while (i < o->samples) {
                size_t n = 0;

                /* a chunk ends where the next jump applies */
                while (n < AUDIOGEN_CHUNK && i + n < o->samples &&
                       (next_jump >= o->n_jumps || o->jumps[next_jump].at > i + n))
                        n++;
                if (n == 0) {
                        content = (uint64_t)((int64_t)content + o->jumps[next_jump++].delta);
                        continue;
                }
                audiocode_fill(pcm, n, content, o->rate);
                for (size_t k = 0; k < n; k++) {
                        le[2 * k] = (uint8_t)((uint16_t)pcm[k] & 0xff);
                        le[2 * k + 1] = (uint8_t)((uint16_t)pcm[k] >> 8);
                }
                if (fwrite(le, 2, n, stdout) != n) {
                        fprintf(stderr, "audiogen: write error: %s\n", strerror(errno));
                        return 1;
                }
                content += n;
                i += n;
        }
        if (fflush(stdout) != 0) {
                fprintf(stderr, "audiogen: write error: %s\n", strerror(errno));
                return 1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct options o = { 0 };
        int r = parse_args(argc, argv, &o);

        if (r)
                return r < 0 ? 0 : r;
        r = check_jumps(&o);
        return r ? r : generate(&o);
}
