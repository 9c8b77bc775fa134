// simdjson_many.cpp - simdjson's DOM parse_many as a bench/codec baseline,
// behind the C interface of simdjson_many.h. It also replaces the global
// operator new and delete to count allocations in bench_allocs.
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include <simdjson.h>

#include "mix.h"
#include "simdjson_many.h"

// ---- counting operator new ------------------------------------------------

void *operator new(std::size_t n)
{
    bench_allocs++;
    void *p = std::malloc(n ? n : 1);
    if (!p)
        throw std::bad_alloc();
    return p;
}

void *operator new[](std::size_t n)
{
    return ::operator new(n);
}

void *operator new(std::size_t n, const std::nothrow_t &) noexcept
{
    bench_allocs++;
    return std::malloc(n ? n : 1);
}

void *operator new[](std::size_t n, const std::nothrow_t &) noexcept
{
    bench_allocs++;
    return std::malloc(n ? n : 1);
}

void operator delete(void *p) noexcept
{
    std::free(p);
}

void operator delete[](void *p) noexcept
{
    std::free(p);
}

void operator delete(void *p, std::size_t) noexcept
{
    std::free(p);
}

void operator delete[](void *p, std::size_t) noexcept
{
    std::free(p);
}

// ---- parse_many -----------------------------------------------------------

struct bench_simdjson {
    simdjson::dom::parser parser;
};

extern "C" bench_simdjson *bench_simdjson_new(int threaded)
{
    bench_simdjson *s = new (std::nothrow) bench_simdjson;
    if (s)
        s->parser.threaded = threaded != 0;
    return s;
}

extern "C" void bench_simdjson_free(bench_simdjson *s)
{
    delete s;
}

static int fail(char *err, size_t errlen, const char *what, simdjson::error_code e)
{
    std::snprintf(err, errlen, "%s: %s", what, simdjson::error_message(e));
    return -1;
}

extern "C" int bench_simdjson_many(bench_simdjson *s, const char *buf, size_t len,
                                   size_t batch_size, uint64_t *messages, uint64_t *signature,
                                   char *err, size_t errlen)
{
    static const char *const names[4] = {"origin", "destination", "type", "key"};
    simdjson::dom::document_stream stream;
    uint64_t n = 0, sig = 0;

    simdjson::error_code e = s->parser.parse_many(buf, len, batch_size).get(stream);
    if (e)
        return fail(err, errlen, "parse_many", e);
    for (auto it = stream.begin(); it != stream.end(); ++it) {
        simdjson::dom::element doc;
        simdjson::dom::object obj;
        if ((e = (*it).get(doc)))
            return fail(err, errlen, "document", e);
        if ((e = doc.get_object().get(obj)))
            return fail(err, errlen, "envelope", e);
        for (const char *name : names) {
            std::string_view v;
            if ((e = obj[name].get_string().get(v)))
                return fail(err, errlen, name, e);
            sig += bench_sig(v.data(), v.size());
        }
        n++;
    }
    if (stream.truncated_bytes()) {
        std::snprintf(err, errlen, "%zu bytes left over at the end", stream.truncated_bytes());
        return -1;
    }
    *messages = n;
    *signature = sig;
    return 0;
}

extern "C" size_t bench_simdjson_padding(void)
{
    return simdjson::SIMDJSON_PADDING;
}

extern "C" size_t bench_simdjson_default_batch(void)
{
    return simdjson::dom::DEFAULT_BATCH_SIZE;
}

extern "C" const char *bench_simdjson_version(void)
{
    return SIMDJSON_STRINGIFY(SIMDJSON_VERSION);
}

extern "C" const char *bench_simdjson_implementation(void)
{
    static std::string name;
    if (name.empty())
        name = simdjson::get_active_implementation()->name();
    return name.c_str();
}

extern "C" const char *bench_cxx_compiler(void)
{
#if defined(__clang__)
    return "clang++ " __VERSION__;
#else
    return "g++ " __VERSION__;
#endif
}
