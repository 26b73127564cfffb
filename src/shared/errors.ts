/**
 * Domain errors with stable codes (SCANRELAY_<AREA>_<WHAT>). The admin API maps `code` to an HTTP
 * status; the inbound server maps spool errors to SMTP replies. Messages never contain secrets.
 */
export class GatewayError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  constructor(code: string, message: string, httpStatus = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.httpStatus = httpStatus;
  }
}

/** One thing wrong in a config file: the key path and what is wrong with it. */
export interface ConfigProblem {
  keyPath: string;
  problem: string;
}

/**
 * A config file problem: which file, which key, what is wrong. A file with several problems gives them all
 * at once (`problems`, one line each in `message`); `keyPath` and `problem` are the first.
 */
export class ConfigError extends GatewayError {
  readonly file: string;
  readonly keyPath: string;
  readonly problem: string;
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, keyPath: string, problem: string, more: readonly ConfigProblem[] = []) {
    const problems = [{ keyPath, problem }, ...more];
    super('SCANRELAY_CONFIG_INVALID', problems.map((p) => `${file}: ${p.keyPath || '(root)'}: ${p.problem}`).join('\n'), 400);
    this.file = file;
    this.keyPath = keyPath;
    this.problem = problem;
    this.problems = problems;
  }

  /** The error for a non-empty list of problems. */
  static of(file: string, problems: readonly ConfigProblem[]): ConfigError {
    const [first, ...more] = problems;
    return new ConfigError(file, first.keyPath, first.problem, more);
  }
}

export class NotFoundError extends GatewayError {
  constructor(what: string, id: string) {
    super('SCANRELAY_NOT_FOUND', `${what} '${id}' not found`, 404);
  }
}

export class ConflictError extends GatewayError {
  constructor(message: string) {
    super('SCANRELAY_CONFLICT', message, 409);
  }
}

export class ValidationError extends GatewayError {
  /** The refused input, when known (e.g. "querystring.since"). */
  readonly field?: string;
  constructor(message: string, field?: string) {
    super('SCANRELAY_INVALID_INPUT', message, 400);
    this.field = field;
  }
}

/** The spool could not take the message (disk full, unwritable): the client must retry later. */
export class SpoolError extends GatewayError {
  constructor(code: 'SCANRELAY_SPOOL_DISK_FULL' | 'SCANRELAY_SPOOL_WRITE' | 'SCANRELAY_SPOOL_ABORTED', message: string, cause?: unknown) {
    super(code, message, 503, { cause });
  }
}

/** The message is larger than the device may send. */
export class MessageTooLargeError extends GatewayError {
  readonly limit: number;
  constructor(limit: number) {
    super('SCANRELAY_MESSAGE_TOO_LARGE', `message exceeds the maximum size of ${limit} bytes`, 413);
    this.limit = limit;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
