/* errors.c - names and sentences of the DCS_E* codes, from DCS_ERRNO_MAP. */
#include "dcs/codec.h"

#include "dcs_config.h"

struct dcs__errinfo {
    const char *name;
    const char *text;
};

static const struct dcs__errinfo dcs__errors[] = {
#define DCS__ERR_INFO(name, reason, text) {reason, text},
    DCS_ERRNO_MAP(DCS__ERR_INFO)
#undef DCS__ERR_INFO
};

static const struct dcs__errinfo *dcs__err_lookup(int code)
{
    int i = code - DCS__E_BASE - 1;
    if (code >= 0 || i < 0 || (size_t)i >= sizeof dcs__errors / sizeof dcs__errors[0])
        return NULL;
    return &dcs__errors[i];
}

const char *dcs_err_name(int code)
{
    const struct dcs__errinfo *e;
    if (code == DCS_OK)
        return "ok";
    e = dcs__err_lookup(code);
    return e ? e->name : "unknown";
}

const char *dcs_strerror(int code)
{
    const struct dcs__errinfo *e;
    if (code == DCS_OK)
        return "success";
    e = dcs__err_lookup(code);
    return e ? e->text : "unknown error code";
}

const char *dcs_version(void)
{
    return DCS_VERSION;
}
