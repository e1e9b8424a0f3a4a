/* 1bit: a local inference engine for ternary (1.58-bit) language models.
 *
 * The public C API. It compiles as C11 and as C++ (nvcc compiles .cu as C++).
 * Every function that can fail returns an ob_status; ob_last_error() gives the
 * message for the calling thread. The library never exits and never prints
 * except through the log callback.
 */
#ifndef ONEBIT_H
#define ONEBIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OB_VERSION_STRING "0.1.0"

typedef enum ob_status {
    OB_OK = 0,
    OB_ERR_ARG,          /* bad argument or usage */
    OB_ERR_IO,           /* file or socket error */
    OB_ERR_FORMAT,       /* malformed or corrupt input */
    OB_ERR_UNSUPPORTED,  /* valid input we do not handle (yet) */
    OB_ERR_NOMEM,        /* allocation failed or a size is absurd */
    OB_ERR_RANGE,        /* a limit was reached (context full, id out of range) */
    OB_ERR_BACKEND,      /* the backend (GPU) failed */
    OB_ERR_CANCELLED,    /* the caller asked to stop */
    OB_ERR_INTERNAL
} ob_status;

/* Message of the last error set on this thread ("" when none). */
const char *ob_last_error(void);
const char *ob_status_name(ob_status st);

typedef enum ob_log_level { OB_LOG_ERROR, OB_LOG_WARN, OB_LOG_INFO, OB_LOG_DEBUG } ob_log_level;
/* Messages at or below this level go to stderr (default OB_LOG_WARN). */
void ob_set_log_level(ob_log_level level);

#ifdef __cplusplus
}
#endif
#endif /* ONEBIT_H */
