/* aacpay: an RTP payloader for AAC as RFC 3640 mpeg4-generic (AAC-hbr),
 * the format IP cameras send, with `frames-per-packet` access units in
 * each packet: cameras and media servers pack several, and a receiver
 * must give each its own time.  GStreamer's rtpmp4gpay sends one per
 * packet.  Registered as element "camsimaacpay". */
#ifndef MWR_CAMSIM_AACPAY_H
#define MWR_CAMSIM_AACPAY_H

#include <gst/gst.h>

#define CAMSIM_AACPAY_MAX_FRAMES 8

/* Registers the element with the (static) plugin registry; TRUE on success. */
gboolean camsim_aacpay_register(void);

#endif
