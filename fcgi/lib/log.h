/*
 * log: one line per message on stderr (the stack scripts send each
 * program's stderr to $EVERRUNS_HOME/log/<program>.log):
 *   2026-01-01T00:00:00.000Z api[1234] error: message
 * Never log API keys or message bodies.
 */
#ifndef EVR_LOG_H
#define EVR_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *program, enum log_level min);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
