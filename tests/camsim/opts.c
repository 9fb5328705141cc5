/* opts: camsim's command line; see opts.h. */
#include "opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
        O_CAMERAS = 256, O_WIDTH, O_HEIGHT, O_FPS, O_BITRATE, O_GOP, O_ENCODERS, O_PORT, O_CONTROL_PORT, O_BIND,
        O_CODEC, O_BFRAMES, O_AUDIO, O_AUDIO_RATE, O_AUDIO_FPP, O_NO_RTCP, O_SR_DELAY, O_RANGE_OFFSET, O_KEY_ON_PLAY,
        O_TRANSPORT, O_RES_CHANGE, O_RTP_TS_START, O_LOSS, O_SEED, O_METADATA, O_AUTH, O_MAX_SESSIONS, O_POLICY,
        O_HELP, O_VERSION,
};

void camsim_usage(FILE *f)
{
        fprintf(f,
                "usage: camsim [options]\n"
                "  --cameras N        cameras rtsp://BIND:PORT/cam1..camN (default 1, max %d)\n"
                "  --width W --height H --fps F     picture (default 640x360 at 25)\n"
                "  --bitrate KBPS     encoder target bitrate (default 1000)\n"
                "  --gop FRAMES       keyframe interval (default 2 s of frames)\n"
                "  --encoders K       encoders shared round-robin by the cameras (default 1)\n"
                "  --port P           RTSP port (default 8554; 0 picks a free one)\n"
                "  --control-port P   control port (default 0: a free one)\n"
                "  --bind ADDR        address for both ports (default 127.0.0.1)\n"
                "Personalities (how real cameras and media servers differ):\n"
                "  --codec h264|h265  video codec (default h264)\n"
                "  --bframes N        B-frames between references (default 0, max %d)\n"
                "  --audio none|aac|pcma|pcmu   time-coded sound (default none)\n"
                "  --audio-rate HZ    sample rate (default 16000 for aac, 8000 for G.711)\n"
                "  --audio-frames-per-packet N  AAC frames (G.711: %d ms) per RTP packet (default 1)\n"
                "  --no-rtcp          send no RTCP sender reports\n"
                "  --first-sr-delay S no sender report until S seconds after each PLAY\n"
                "  --play-range-offset  answer PLAY with Range: npt=<seconds since the stream began>-\n"
                "  --keyframe-on-play   a new session's PLAY asks the encoder for an IDR (most IP cameras)\n"
                "  --transport udp-only|any     refuse RTP over TCP (461) with udp-only\n"
                "  --resolution-change-at S WxH  switch the picture to WxH S seconds after start\n"
                "                     (also S:WxH)\n"
                "  --rtp-ts-start N   first RTP timestamp (e.g. 4294000000 wraps in 11 s)\n"
                "  --loss PERCENT     drop that share of RTP packets at random\n"
                "  --seed N           seed of the loss (default 1)\n"
                "  --metadata         a third stream of ONVIF-style XML events (application data)\n"
                "  --auth basic|digest USER:PASS  DESCRIBE and SETUP need these credentials (401\n"
                "                     otherwise); split at the first ':', so PASS may hold ':' and '@'\n"
                "                     (also 'MODE USER:PASS' or MODE:USER:PASS as one argument; digest is MD5;\n"
                "                     ps shows PASS as stars)\n"
                "  --max-sessions N   at most N RTSP sessions per stream (/camK) at a time (1..%d)\n"
                "  --policy refuse|kick  past the limit: refuse the SETUP with 453 Not Enough Bandwidth\n"
                "                     (default), or accept it and close the oldest session's connection\n"
                "On start prints one line: 'camsim ready rtsp_port=P control_port=C cameras=N ...'.\n"
                "Control commands (one per line): outage CAM|all SECONDS, drop [CAM|all],\n"
                "corrupt CAM|all FRAMES, status, sessions [CAM|all].  SIGUSR1 drops every session.\n",
                CAMSIM_MAX_CAMERAS, CAMSIM_MAX_BFRAMES, CAMSIM_G711_FRAME_MS, CAMSIM_MAX_SESSIONS_LIMIT);
}

const char *camsim_codec_name(enum camsim_codec c)
{
        return c == CAMSIM_H265 ? "h265" : "h264";
}

const char *camsim_audio_name(enum camsim_audio a)
{
        static const char *const names[] = { "none", "aac", "pcma", "pcmu" };

        return names[a];
}

const char *camsim_auth_name(enum camsim_auth a)
{
        static const char *const names[] = { "none", "basic", "digest" };

        return names[a];
}

const char *camsim_policy_name(enum camsim_policy p)
{
        static const char *const names[] = { "none", "refuse", "kick" };

        return names[p];
}

static int parse_int(FILE *err, const char *name, const char *s, long min, long max, long *out)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || end == s || v < min || v > max) {
                fprintf(err, "camsim: --%s must be an integer in [%ld, %ld], got '%s'\n", name, min, max, s);
                return -EINVAL;
        }
        *out = v;
        return 0;
}

static int parse_i(FILE *err, const char *name, const char *s, int min, int max, int *out)
{
        long v;
        int r = parse_int(err, name, s, min, max, &v);

        if (r == 0)
                *out = (int)v;
        return r;
}

static int parse_double(FILE *err, const char *name, const char *s, double min, double max, double *out)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || end == s || !isfinite(v) || v < min || v > max) {
                fprintf(err, "camsim: --%s must be a number in [%g, %g], got '%s'\n", name, min, max, s);
                return -EINVAL;
        }
        *out = v;
        return 0;
}

static int parse_choice(FILE *err, const char *name, const char *s, const char *const *choices, int *out)
{
        for (int i = 0; choices[i]; i++)
                if (!strcmp(s, choices[i])) {
                        *out = i;
                        return 0;
                }
        fprintf(err, "camsim: --%s: unknown value '%s'\n", name, s);
        return -EINVAL;
}

/* "S WxH", "S:WxH", or S with WxH as the next argument. */
static int parse_res_change(FILE *err, const char *arg, int argc, char **argv, struct opts *o)
{
        char secs[64], size[64];
        const char *sep = strpbrk(arg, " :");
        char *x, *end;
        long w, h;

        if (sep) {
                snprintf(secs, sizeof(secs), "%.*s", (int)(sep - arg), arg);
                snprintf(size, sizeof(size), "%s", sep + 1);
        } else if (optind < argc) {
                snprintf(secs, sizeof(secs), "%s", arg);
                snprintf(size, sizeof(size), "%s", argv[optind++]);
        } else {
                fprintf(err, "camsim: --resolution-change-at needs SECONDS and WxH\n");
                return -EINVAL;
        }
        if (parse_double(err, "resolution-change-at", secs, 0.1, 86400, &o->res_change_at_s) < 0)
                return -EINVAL;
        errno = 0;
        w = strtol(size, &x, 10);
        if (errno || x == size || (*x != 'x' && *x != 'X') || (h = strtol(x + 1, &end, 10), *end) || w < 128 ||
            w > 3840 || h < 64 || h > 2160 || ((w | h) & 1)) {
                fprintf(err, "camsim: --resolution-change-at: size must be WxH, even, 128x64..3840x2160, got '%s'\n",
                        size);
                return -EINVAL;
        }
        o->res_width = (int)w;
        o->res_height = (int)h;
        return 0;
}

/* One credential: at most CAMSIM_CREDENTIAL_MAX bytes and no control
 * character (it goes into a header and an MD5 input). */
static int copy_credential(FILE *err, const char *what, const char *s, size_t len, char *out)
{
        if (len > CAMSIM_CREDENTIAL_MAX) {
                fprintf(err, "camsim: --auth: the %s is longer than %d bytes\n", what, CAMSIM_CREDENTIAL_MAX);
                return -EINVAL;
        }
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
                        fprintf(err, "camsim: --auth: the %s has a control character\n", what);
                        return -EINVAL;
                }
        memcpy(out, s, len);
        out[len] = '\0';
        return 0;
}

/* "MODE USER:PASS", "MODE:USER:PASS", or MODE with USER:PASS as the next
 * argument.  The credentials split at their FIRST ':', so a password may
 * hold ':' and '@' ("admin:a:b" is admin with the password "a:b"), as
 * cameras allow.  Errors never echo the credentials. */
static int parse_auth(FILE *err, char *arg, int argc, char **argv, struct opts *o)
{
        char *sep = strpbrk(arg, " :"), *creds, *colon;
        size_t mode_len;

        if (sep) {
                mode_len = (size_t)(sep - arg);
                creds = sep + 1;
        } else if (optind < argc) {
                mode_len = strlen(arg);
                creds = argv[optind++];
        } else {
                fprintf(err, "camsim: --auth needs basic|digest and USER:PASS\n");
                return -EINVAL;
        }
        if (mode_len == 5 && !strncmp(arg, "basic", 5)) {
                o->auth = CAMSIM_AUTH_BASIC;
        } else if (mode_len == 6 && !strncmp(arg, "digest", 6)) {
                o->auth = CAMSIM_AUTH_DIGEST;
        } else {
                fprintf(err, "camsim: --auth: unknown method '%.*s' (basic or digest)\n",
                        mode_len > 32 ? 32 : (int)mode_len, arg);
                return -EINVAL;
        }
        colon = strchr(creds, ':');
        if (!colon || colon == creds) {
                fprintf(err, "camsim: --auth: the credentials must be USER:PASS with a user name "
                             "(split at the first ':')\n");
                return -EINVAL;
        }
        if (copy_credential(err, "user name", creds, (size_t)(colon - creds), o->auth_user) < 0 ||
            copy_credential(err, "password", colon + 1, strlen(colon + 1), o->auth_pass) < 0)
                return -EINVAL;
        o->auth_secret = colon + 1;
        return 0;
}

static int parse_one(FILE *err, int c, char *arg, int argc, char **argv, struct opts *o)
{
        static const char *const codecs[] = { "h264", "h265", NULL };
        static const char *const audios[] = { "none", "aac", "pcma", "pcmu", NULL };
        static const char *const transports[] = { "any", "udp-only", NULL };
        static const char *const policies[] = { "refuse", "kick", NULL };
        int v = 0, r;
        long l = 0;

        switch (c) {
        case O_CAMERAS: return parse_i(err, "cameras", arg, 1, CAMSIM_MAX_CAMERAS, &o->cameras);
        case O_WIDTH: return parse_i(err, "width", arg, 128, 3840, &o->width);
        case O_HEIGHT: return parse_i(err, "height", arg, 64, 2160, &o->height);
        case O_FPS: return parse_i(err, "fps", arg, 1, 120, &o->fps);
        case O_BITRATE: return parse_i(err, "bitrate", arg, 50, 50000, &o->bitrate_kbps);
        case O_GOP: return parse_i(err, "gop", arg, 1, 1000, &o->gop);
        case O_ENCODERS: return parse_i(err, "encoders", arg, 1, CAMSIM_MAX_CAMERAS, &o->encoders);
        case O_PORT: return parse_i(err, "port", arg, 0, 65535, &o->port);
        case O_CONTROL_PORT: return parse_i(err, "control-port", arg, 0, 65535, &o->control_port);
        case O_BIND: o->bind = arg; return 0;
        case O_CODEC:
                r = parse_choice(err, "codec", arg, codecs, &v);
                o->codec = (enum camsim_codec)v;
                return r;
        case O_BFRAMES: return parse_i(err, "bframes", arg, 0, CAMSIM_MAX_BFRAMES, &o->bframes);
        case O_AUDIO:
                r = parse_choice(err, "audio", arg, audios, &v);
                o->audio = (enum camsim_audio)v;
                return r;
        case O_AUDIO_RATE: return parse_i(err, "audio-rate", arg, 8000, 48000, &o->audio_rate);
        case O_AUDIO_FPP: return parse_i(err, "audio-frames-per-packet", arg, 1, CAMSIM_MAX_AUDIO_FPP, &o->audio_fpp);
        case O_NO_RTCP: o->no_rtcp = true; return 0;
        case O_SR_DELAY: return parse_double(err, "first-sr-delay", arg, 0, CAMSIM_MAX_SR_DELAY_S, &o->first_sr_delay_s);
        case O_RANGE_OFFSET: o->play_range_offset = true; return 0;
        case O_KEY_ON_PLAY: o->keyframe_on_play = true; return 0;
        case O_TRANSPORT:
                r = parse_choice(err, "transport", arg, transports, &v);
                o->udp_only = v == 1;
                return r;
        case O_RES_CHANGE: return parse_res_change(err, arg, argc, argv, o);
        case O_RTP_TS_START:
                r = parse_int(err, "rtp-ts-start", arg, 0, 4294967295L, &l);
                o->rtp_ts_start = l;
                return r;
        case O_LOSS: return parse_double(err, "loss", arg, 0, 50, &o->loss_pct);
        case O_METADATA: o->metadata = true; return 0;
        case O_SEED:
                r = parse_int(err, "seed", arg, 0, 4294967295L, &l);
                o->seed = (uint32_t)l;
                return r;
        case O_AUTH: return parse_auth(err, arg, argc, argv, o);
        case O_MAX_SESSIONS: return parse_i(err, "max-sessions", arg, 1, CAMSIM_MAX_SESSIONS_LIMIT, &o->max_sessions);
        case O_POLICY:
                r = parse_choice(err, "policy", arg, policies, &v);
                o->policy = (enum camsim_policy)(v + 1);
                return r;
        default: camsim_usage(err); return -EINVAL;
        }
}

static int check(FILE *err, struct opts *o)
{
        if ((o->width | o->height) & 1) {
                fprintf(err, "camsim: --width and --height must be even\n");
                return -EINVAL;
        }
        if (o->audio_rate == 0)
                o->audio_rate = o->audio == CAMSIM_AUDIO_AAC ? 16000 : 8000;
        if (o->audio_rate % 100) {
                fprintf(err, "camsim: --audio-rate must be a multiple of 100\n");
                return -EINVAL;
        }
        if ((o->audio == CAMSIM_AUDIO_PCMA || o->audio == CAMSIM_AUDIO_PCMU) && o->audio_rate != 8000) {
                fprintf(err, "camsim: G.711 is 8000 Hz, --audio-rate %d is not\n", o->audio_rate);
                return -EINVAL;
        }
        if (o->gop == 0)
                o->gop = 2 * o->fps;
        if (o->encoders > o->cameras)
                o->encoders = o->cameras;
        if (o->policy != CAMSIM_POLICY_NONE && o->max_sessions == 0) {
                fprintf(err, "camsim: --policy needs --max-sessions (there is no limit to apply it to)\n");
                return -EINVAL;
        }
        if (o->max_sessions > 0 && o->policy == CAMSIM_POLICY_NONE)
                o->policy = CAMSIM_POLICY_REFUSE;
        return 0;
}

int camsim_opts_parse(int argc, char **argv, struct opts *o, FILE *err)
{
        static const struct option longopts[] = {
                { "cameras", required_argument, NULL, O_CAMERAS },
                { "width", required_argument, NULL, O_WIDTH },
                { "height", required_argument, NULL, O_HEIGHT },
                { "fps", required_argument, NULL, O_FPS },
                { "bitrate", required_argument, NULL, O_BITRATE },
                { "gop", required_argument, NULL, O_GOP },
                { "encoders", required_argument, NULL, O_ENCODERS },
                { "port", required_argument, NULL, O_PORT },
                { "control-port", required_argument, NULL, O_CONTROL_PORT },
                { "bind", required_argument, NULL, O_BIND },
                { "codec", required_argument, NULL, O_CODEC },
                { "bframes", required_argument, NULL, O_BFRAMES },
                { "audio", required_argument, NULL, O_AUDIO },
                { "audio-rate", required_argument, NULL, O_AUDIO_RATE },
                { "audio-frames-per-packet", required_argument, NULL, O_AUDIO_FPP },
                { "no-rtcp", no_argument, NULL, O_NO_RTCP },
                { "first-sr-delay", required_argument, NULL, O_SR_DELAY },
                { "play-range-offset", no_argument, NULL, O_RANGE_OFFSET },
                { "keyframe-on-play", no_argument, NULL, O_KEY_ON_PLAY },
                { "transport", required_argument, NULL, O_TRANSPORT },
                { "resolution-change-at", required_argument, NULL, O_RES_CHANGE },
                { "rtp-ts-start", required_argument, NULL, O_RTP_TS_START },
                { "loss", required_argument, NULL, O_LOSS },
                { "seed", required_argument, NULL, O_SEED },
                { "metadata", no_argument, NULL, O_METADATA },
                { "auth", required_argument, NULL, O_AUTH },
                { "max-sessions", required_argument, NULL, O_MAX_SESSIONS },
                { "policy", required_argument, NULL, O_POLICY },
                { "help", no_argument, NULL, O_HELP },
                { "version", no_argument, NULL, O_VERSION },
                { 0 }
        };
        int c, r = 0;

        *o = (struct opts){ .cameras = 1, .encoders = 1, .width = 640, .height = 360, .fps = 25,
                            .bitrate_kbps = 1000, .port = 8554, .bind = "127.0.0.1", .audio_fpp = 1,
                            .res_change_at_s = -1, .rtp_ts_start = -1, .seed = 1 };
        optind = 0; /* glibc: start over (tests parse twice) */
        while (r == 0 && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                if (c == O_HELP) {
                        camsim_usage(stdout);
                        return 1;
                }
                if (c == O_VERSION) {
                        printf("camsim %s (%s)\n", MWR_VERSION, MWR_COMMIT);
                        return 1;
                }
                r = parse_one(err, c, optarg, argc, argv, o);
        }
        if (r == 0 && optind < argc) {
                fprintf(err, "camsim: unexpected argument '%s'\n", argv[optind]);
                r = -EINVAL;
        }
        return r < 0 ? r : check(err, o);
}
