/**
 * The server's log: one line per event, as text (`info POST /db/notes/v2/pipeline 200 1.2ms
 * db=notes`, the default) or as one JSON object per line (`--log-format json`: `time`,
 * `level`, `msg` and the event's fields), for log collectors. Events below the level
 * (`--log-level`, default `info`) are dropped before a line is built.
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'text' | 'json';

/** An event's fields: short names, plain values. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Whether events of this level are written (to skip building costly fields). */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  format?: LogFormat;
  level?: LogLevel;
  /** Where lines go; default stdout (errors included, so one stream holds the whole story). */
  sink?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? 'text';
  const threshold = LOG_LEVELS.indexOf(options.level ?? 'info');
  const sink = options.sink ?? ((line: string) => process.stdout.write(`${line}\n`));
  const write = (level: LogLevel, msg: string, fields: LogFields = {}): void => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    sink(format === 'json' ? jsonLine(level, msg, fields) : textLine(level, msg, fields));
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    enabled: (level) => LOG_LEVELS.indexOf(level) >= threshold,
  };
}

function jsonLine(level: LogLevel, msg: string, fields: LogFields): string {
  const record: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) record[k] = v;
  return JSON.stringify(record);
}

/** `level msg k=v ...`; a value with spaces or quotes is JSON-quoted so the line stays parseable. */
function textLine(level: LogLevel, msg: string, fields: LogFields): string {
  let line = `${level} ${msg}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const text = String(v);
    line += ` ${k}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`;
  }
  return line;
}
