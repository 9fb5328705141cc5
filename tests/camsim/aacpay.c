/* aacpay: see aacpay.h.  Frames are collected until frames-per-packet are
 * there, or until one does not follow its predecessor in time (an outage):
 * the AUs of one packet are consecutive, as RFC 3640 requires (the RTP
 * timestamp is the first one's; each next AU is one frame later).  The
 * packet: AU-headers-length (16 bits), one 16-bit AU header per frame
 * (13 bits size, 3 bits index/index-delta = 0), then the frames. */
#include "aacpay.h"

#include <gst/rtp/gstrtpbasepayload.h>
#include <gst/rtp/gstrtpbuffer.h>
#include <stdio.h>

#define AAC_FRAME_SAMPLES 1024
#define AU_SIZE_MAX 8191 /* 13 bits */

#define CAMSIM_TYPE_AACPAY (camsim_aacpay_get_type())
G_DECLARE_FINAL_TYPE(CamsimAacPay, camsim_aacpay, CAMSIM, AACPAY, GstRTPBasePayload)

struct _CamsimAacPay {
        GstRTPBasePayload parent;
        guint frames_per_packet;
        GstBuffer *au[CAMSIM_AACPAY_MAX_FRAMES];
        guint n_au;
        gint rate;
        GstClockTime next_pts; /* where the next frame of this packet is due */
};

enum { PROP_0, PROP_FRAMES_PER_PACKET };

G_DEFINE_TYPE(CamsimAacPay, camsim_aacpay, GST_TYPE_RTP_BASE_PAYLOAD)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
        "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
        GST_STATIC_CAPS("audio/mpeg, mpegversion=(int)4, stream-format=(string)raw"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
        "src", GST_PAD_SRC, GST_PAD_ALWAYS,
        GST_STATIC_CAPS("application/x-rtp, media=(string)audio, encoding-name=(string)MPEG4-GENERIC"));

static gboolean aacpay_set_caps(GstRTPBasePayload *base, GstCaps *caps)
{
        CamsimAacPay *self = CAMSIM_AACPAY(base);
        GstStructure *s = gst_caps_get_structure(caps, 0);
        const GValue *cd = gst_structure_get_value(s, "codec_data");
        gint channels = 1;
        GstMapInfo map;
        GString *config;
        gchar chans[16];
        gboolean ok;

        if (!gst_structure_get_int(s, "rate", &self->rate) || !cd || !GST_VALUE_HOLDS_BUFFER(cd))
                return FALSE;
        gst_structure_get_int(s, "channels", &channels);
        config = g_string_new(NULL);
        if (!gst_buffer_map(gst_value_get_buffer(cd), &map, GST_MAP_READ)) {
                g_string_free(config, TRUE);
                return FALSE;
        }
        for (gsize i = 0; i < map.size; i++)
                g_string_append_printf(config, "%02x", map.data[i]);
        gst_buffer_unmap(gst_value_get_buffer(cd), &map);
        snprintf(chans, sizeof(chans), "%d", channels);
        gst_rtp_base_payload_set_options(base, "audio", TRUE, "MPEG4-GENERIC", (guint32)self->rate);
        ok = gst_rtp_base_payload_set_outcaps(base, "encoding-params", G_TYPE_STRING, chans, "streamtype",
                                              G_TYPE_STRING, "5", "profile-level-id", G_TYPE_STRING, "1", "mode",
                                              G_TYPE_STRING, "AAC-hbr", "config", G_TYPE_STRING, config->str,
                                              "sizelength", G_TYPE_STRING, "13", "indexlength", G_TYPE_STRING, "3",
                                              "indexdeltalength", G_TYPE_STRING, "3", NULL);
        g_string_free(config, TRUE);
        return ok;
}

static void aacpay_drop(CamsimAacPay *self)
{
        for (guint i = 0; i < self->n_au; i++)
                gst_buffer_unref(self->au[i]);
        self->n_au = 0;
}

/* Sends what is collected as one packet. */
static GstFlowReturn aacpay_flush(CamsimAacPay *self)
{
        GstRTPBasePayload *base = GST_RTP_BASE_PAYLOAD(self);
        GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
        gsize data = 0;
        GstBuffer *out;
        guint8 *p;

        if (self->n_au == 0)
                return GST_FLOW_OK;
        for (guint i = 0; i < self->n_au; i++)
                data += gst_buffer_get_size(self->au[i]);
        out = gst_rtp_base_payload_allocate_output_buffer(base, (guint)(2 + 2 * self->n_au + data), 0, 0);
        gst_rtp_buffer_map(out, GST_MAP_WRITE, &rtp);
        p = gst_rtp_buffer_get_payload(&rtp);
        p[0] = (guint8)((16 * self->n_au) >> 8);
        p[1] = (guint8)(16 * self->n_au);
        p += 2;
        for (guint i = 0; i < self->n_au; i++) {
                guint size = (guint)gst_buffer_get_size(self->au[i]);
                *p++ = (guint8)(size >> 5);
                *p++ = (guint8)((size & 0x1f) << 3);
        }
        for (guint i = 0; i < self->n_au; i++)
                p += gst_buffer_extract(self->au[i], 0, p, gst_buffer_get_size(self->au[i]));
        gst_rtp_buffer_set_marker(&rtp, TRUE);
        gst_rtp_buffer_unmap(&rtp);
        GST_BUFFER_PTS(out) = GST_BUFFER_PTS(self->au[0]);
        GST_BUFFER_DURATION(out) = gst_util_uint64_scale_int(self->n_au * AAC_FRAME_SAMPLES, GST_SECOND, self->rate);
        aacpay_drop(self);
        return gst_rtp_base_payload_push(base, out);
}

static GstFlowReturn aacpay_handle_buffer(GstRTPBasePayload *base, GstBuffer *buf)
{
        CamsimAacPay *self = CAMSIM_AACPAY(base);
        GstClockTime pts = GST_BUFFER_PTS(buf), frame = gst_util_uint64_scale_int(AAC_FRAME_SAMPLES, GST_SECOND,
                                                                                   self->rate > 0 ? self->rate : 1);
        GstFlowReturn r = GST_FLOW_OK;

        if (gst_buffer_get_size(buf) > AU_SIZE_MAX) {
                gst_buffer_unref(buf);
                return GST_FLOW_OK;
        }
        /* a frame that does not follow on (half a frame of slack) starts a packet */
        if (self->n_au > 0 && (pts == GST_CLOCK_TIME_NONE || pts > self->next_pts + frame / 2 ||
                               pts + frame / 2 < self->next_pts))
                r = aacpay_flush(self);
        self->au[self->n_au++] = buf;
        self->next_pts = pts + frame;
        if (r == GST_FLOW_OK && self->n_au >= self->frames_per_packet)
                r = aacpay_flush(self);
        return r;
}

static gboolean aacpay_sink_event(GstRTPBasePayload *base, GstEvent *event)
{
        CamsimAacPay *self = CAMSIM_AACPAY(base);

        if (GST_EVENT_TYPE(event) == GST_EVENT_EOS)
                aacpay_flush(self);
        else if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP)
                aacpay_drop(self);
        return GST_RTP_BASE_PAYLOAD_CLASS(camsim_aacpay_parent_class)->sink_event(base, event);
}

static void aacpay_set_property(GObject *obj, guint id, const GValue *v, GParamSpec *ps)
{
        if (id == PROP_FRAMES_PER_PACKET)
                CAMSIM_AACPAY(obj)->frames_per_packet = g_value_get_uint(v);
        else
                G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
}

static void aacpay_get_property(GObject *obj, guint id, GValue *v, GParamSpec *ps)
{
        if (id == PROP_FRAMES_PER_PACKET)
                g_value_set_uint(v, CAMSIM_AACPAY(obj)->frames_per_packet);
        else
                G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, ps);
}

static void aacpay_finalize(GObject *obj)
{
        aacpay_drop(CAMSIM_AACPAY(obj));
        G_OBJECT_CLASS(camsim_aacpay_parent_class)->finalize(obj);
}

static void camsim_aacpay_class_init(CamsimAacPayClass *klass)
{
        GObjectClass *oc = G_OBJECT_CLASS(klass);
        GstElementClass *ec = GST_ELEMENT_CLASS(klass);
        GstRTPBasePayloadClass *pc = GST_RTP_BASE_PAYLOAD_CLASS(klass);

        oc->set_property = aacpay_set_property;
        oc->get_property = aacpay_get_property;
        oc->finalize = aacpay_finalize;
        g_object_class_install_property(
                oc, PROP_FRAMES_PER_PACKET,
                g_param_spec_uint("frames-per-packet", "Frames per packet", "AAC frames in each RTP packet", 1,
                                  CAMSIM_AACPAY_MAX_FRAMES, 1, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
        gst_element_class_add_static_pad_template(ec, &sink_template);
        gst_element_class_add_static_pad_template(ec, &src_template);
        gst_element_class_set_static_metadata(ec, "camsim AAC payloader", "Codec/Payloader/Network/RTP",
                                              "AAC in RFC 3640 packets of several frames", "mwr");
        pc->set_caps = aacpay_set_caps;
        pc->handle_buffer = aacpay_handle_buffer;
        pc->sink_event = aacpay_sink_event;
}

static void camsim_aacpay_init(CamsimAacPay *self)
{
        self->frames_per_packet = 1;
}

gboolean camsim_aacpay_register(void)
{
        return gst_element_register(NULL, "camsimaacpay", GST_RANK_NONE, CAMSIM_TYPE_AACPAY);
}
