/* stream_params: in-band parameter sets; see stream_params.h. */
#include "worker/stream_params.h"

#include <errno.h>
#include <string.h>

/* Which parameter set a NAL is, as a bit: H.264 SPS 1, PPS 2; H.265 VPS 4,
 * SPS 1, PPS 2; 0 for any other NAL. */
static unsigned param_set_bit(const uint8_t *nal, bool hevc)
{
        if (hevc) {
                int type = (nal[0] >> 1) & 0x3f;
                return type == 32 ? 4 : type == 33 ? 1 : type == 34 ? 2 : 0;
        }
        return (nal[0] & 0x1f) == 7 ? 1 : (nal[0] & 0x1f) == 8 ? 2 : 0;
}

int stream_params_extract(const uint8_t *au, size_t len, bool hevc, uint8_t *out, size_t cap)
{
        size_t o = 0, i = 0;
        unsigned have = 0, need = hevc ? 7 : 3;

        while (i + 3 < len) {
                size_t start, end;

                if (!(au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1)) {
                        i++;
                        continue;
                }
                start = i + 3;
                for (end = start; end + 2 < len && !(au[end] == 0 && au[end + 1] == 0 && au[end + 2] <= 1); end++)
                        ;
                if (end + 2 >= len)
                        end = len;
                while (end > start && au[end - 1] == 0) /* trailing zeros belong to the next start code */
                        end--;
                if (end > start + (hevc ? 2 : 1) && param_set_bit(au + start, hevc)) {
                        if (o + 4 + (end - start) > cap)
                                return -ENOBUFS;
                        have |= param_set_bit(au + start, hevc);
                        memcpy(out + o, "\0\0\0\1", 4);
                        memcpy(out + o + 4, au + start, end - start);
                        o += 4 + (end - start);
                }
                i = end;
        }
        return have == need ? (int)o : 0; /* a set lost in part (UDP) describes nothing */
}

int stream_params_size(enum AVCodecID codec, const uint8_t *au, size_t len, int *width, int *height)
{
        AVCodecParserContext *pc = av_parser_init(codec);
        AVCodecContext *avctx = avcodec_alloc_context3(NULL);
        uint8_t *out = NULL;
        int out_size = 0, r = -EINVAL;

        if (!pc || !avctx) {
                r = -ENOMEM;
                goto out;
        }
        pc->flags |= PARSER_FLAG_COMPLETE_FRAMES; /* au is one whole frame */
        av_parser_parse2(pc, avctx, &out, &out_size, au, (int)len, AV_NOPTS_VALUE, AV_NOPTS_VALUE, 0);
        if (pc->width > 0 && pc->height > 0) {
                *width = pc->width;
                *height = pc->height;
                r = 0;
        }
out:
        av_parser_close(pc);
        avcodec_free_context(&avctx);
        return r;
}
