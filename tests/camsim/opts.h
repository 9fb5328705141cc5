/* opts: camsim's command line.  Besides the picture (size, rate, bitrate,
 * GOP), each "personality" flag makes the simulated camera behave like a
 * kind of real camera or media server, so the recorder is tested against
 * it: codec, B-frames, audio codec and packing, RTCP habits, the PLAY
 * Range answer, transports, a mid-stream resolution change, RTP timestamp
 * start, packet loss, authentication and a cap on sessions per stream.
 * Parsed once into struct opts; pure (no GStreamer), so it is unit tested. */
#ifndef MWR_CAMSIM_OPTS_H
#define MWR_CAMSIM_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CAMSIM_MAX_CAMERAS 64
#define CAMSIM_MAX_BFRAMES 4
#define CAMSIM_MAX_AUDIO_FPP 8      /* AAC frames per RTP packet (G.711: 20 ms units) */
#define CAMSIM_G711_FRAME_MS 20     /* one G.711 "frame": the usual ptime */
#define CAMSIM_MAX_SR_DELAY_S 60.0
#define CAMSIM_CREDENTIAL_MAX 128   /* bytes of the user name, and of the password */
#define CAMSIM_MAX_SESSIONS_LIMIT 1000 /* --max-sessions: above this it is no limit at all */

enum camsim_codec { CAMSIM_H264, CAMSIM_H265 };
enum camsim_audio { CAMSIM_AUDIO_NONE, CAMSIM_AUDIO_AAC, CAMSIM_AUDIO_PCMA, CAMSIM_AUDIO_PCMU };
enum camsim_auth { CAMSIM_AUTH_NONE, CAMSIM_AUTH_BASIC, CAMSIM_AUTH_DIGEST };
/* What a SETUP that would open session max_sessions + 1 on a stream gets. */
enum camsim_policy {
        CAMSIM_POLICY_NONE,   /* no limit (--max-sessions not given) */
        CAMSIM_POLICY_REFUSE, /* 453 Not Enough Bandwidth (Hikvision, Dahua); the default with a limit */
        CAMSIM_POLICY_KICK,   /* accepted; the oldest session's connection is closed (consumer cameras) */
};

struct opts {
        int cameras, encoders, width, height, fps, bitrate_kbps, gop;
        int port, control_port;
        const char *bind;
        enum camsim_codec codec;
        int bframes;
        enum camsim_audio audio;
        int audio_rate;             /* 0 until parsed: 16000 for AAC, 8000 for G.711 */
        int audio_fpp;              /* frames per RTP packet */
        bool no_rtcp;
        double first_sr_delay_s;    /* no sender report this long after each PLAY */
        bool play_range_offset;     /* PLAY answered with Range: npt=<seconds since the media began>- */
        bool keyframe_on_play;      /* each PLAY asks the encoder for an IDR, as most IP cameras do */
        bool udp_only;              /* RTP over UDP only: TCP interleaved is refused (461) */
        double res_change_at_s;     /* < 0: never */
        int res_width, res_height;  /* the picture after the change */
        int64_t rtp_ts_start;       /* < 0: random (GStreamer's default) */
        double loss_pct;            /* RTP packets dropped at random, per stream */
        bool metadata;              /* a third stream of ONVIF-style XML events: data, not footage */
        uint32_t seed;              /* for the loss */
        enum camsim_auth auth;      /* every DESCRIBE and SETUP needs auth_user:auth_pass */
        char auth_user[CAMSIM_CREDENTIAL_MAX + 1], auth_pass[CAMSIM_CREDENTIAL_MAX + 1];
        char *auth_secret;          /* PASS in argv itself, for main to blank out of ps; NULL: none */
        int max_sessions;           /* per mount path; 0: no limit */
        enum camsim_policy policy;  /* NONE exactly when max_sessions is 0 */
};

/* Parse argv into o.  0; 1 after --help/--version (printed; exit 0);
 * -EINVAL with the reason on err (naming the option). */
int camsim_opts_parse(int argc, char **argv, struct opts *o, FILE *err);

void camsim_usage(FILE *f);

const char *camsim_codec_name(enum camsim_codec c);
const char *camsim_audio_name(enum camsim_audio a);
const char *camsim_auth_name(enum camsim_auth a);
const char *camsim_policy_name(enum camsim_policy p);

#endif
