/* simdjson_many.h - bench-internal: the C interface of simdjson_many.cpp,
 * which runs simdjson's DOM parse_many over a dcs stream for bench/codec. */
#ifndef DCS_BENCH_SIMDJSON_MANY_H
#define DCS_BENCH_SIMDJSON_MANY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every allocation the measured code asks for: the counting dcs allocator,
 * the jansson and cJSON hooks and (in simdjson_many.cpp) the global C++
 * operator new all add to it. Defined in codec.c. */
extern uint64_t bench_allocs;

typedef struct bench_simdjson bench_simdjson;

/* A parser; threaded selects simdjson's default of running stage 1 of the
 * next batch on a second thread. NULL when out of memory. */
bench_simdjson *bench_simdjson_new(int threaded);
void bench_simdjson_free(bench_simdjson *s);

/* Parse the concatenated documents buf[0..len) with parse_many (buf must have
 * bench_simdjson_padding() readable bytes after len) in batches of
 * batch_size bytes, get origin, destination, type and key of each as strings
 * and add up their bench_sig(). Returns 0, or -1 with a reason in err. */
int bench_simdjson_many(bench_simdjson *s, const char *buf, size_t len, size_t batch_size,
                        uint64_t *messages, uint64_t *signature, char *err, size_t errlen);

size_t bench_simdjson_padding(void);
size_t bench_simdjson_default_batch(void);
const char *bench_simdjson_version(void);
/* The kernel simdjson chose for this CPU at run time ("icelake", "haswell"...). */
const char *bench_simdjson_implementation(void);
/* The C++ compiler's version string. */
const char *bench_cxx_compiler(void);

#ifdef __cplusplus
}
#endif
#endif /* DCS_BENCH_SIMDJSON_MANY_H */
