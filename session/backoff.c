/* backoff.c - the reconnect delay of spec section 8.3. */
#include <math.h>

#include "dcs/session.h"

/* The largest double below 1, the top of the range of u. */
#define DCS__U_MAX (1.0 - 1.0 / 9007199254740992.0)

dcs_ms dcs_backoff_delay(const dcs_session_config *c, unsigned failures, double u)
{
    double max = (double)c->reconnect_max;
    double d, j;

    /* u comes from the caller's source; keep it in [0, 1) even if the source
     * misbehaves (NaN counts as 0). */
    if (!(u >= 0.0))
        u = 0.0;
    else if (u > DCS__U_MAX)
        u = DCS__U_MAX;

    /* The cap applies before the jitter. pow() is exact for the powers of
     * 1.5 that matter (3^n fits in a double's mantissa up to n = 33), and an
     * overflow to infinity is simply capped. */
    d = (double)c->reconnect_base * pow(c->reconnect_factor, (double)failures);
    if (!(d <= max))
        d = max;

    /* j = 1 - jitter + 2 * jitter * u, written so that u = 0.5 gives exactly
     * 1 and the un-jittered delay comes out exactly. */
    j = 1.0 + c->reconnect_jitter * (2.0 * u - 1.0);
    d = floor(d * j);
    if (d >= 9223372036854775807.0)
        return DCS_NEVER;
    return d > 0.0 ? (dcs_ms)d : 0;
}
