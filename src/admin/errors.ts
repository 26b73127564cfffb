/**
 * One error shape for the whole admin API: `{ error, code, message }` (and `field` for refused input).
 * 4xx answers say what is wrong; 5xx answers say nothing about internals (the detail goes to the log).
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError, ValidationError } from '../shared/errors.js';
import { isCorruptionError } from '../store/database.js';

export interface ErrorBody {
  error: string;
  code: string;
  message: string;
  field?: string;
}

export function errorBody(status: number, code: string, message: string, field?: string): ErrorBody {
  return { error: STATUS_CODES[status] ?? 'Error', code, message, ...(field ? { field } : {}) };
}

interface ValidationIssue {
  instancePath?: string;
  keyword?: string;
  params?: Record<string, unknown>;
  message?: string;
}

/** "body.allowRecipients[0]" from Ajv's instancePath, the missing or unknown property included. */
export function validationField(context: string | undefined, issue: ValidationIssue | undefined): string | undefined {
  if (!issue) return context;
  const parts = (issue.instancePath ?? '')
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const extra = issue.params?.missingProperty ?? issue.params?.additionalProperty;
  if (typeof extra === 'string') parts.push(extra);
  const path = parts.reduce((out, part) => (/^\d+$/.test(part) ? `${out}[${part}]` : out ? `${out}.${part}` : part), '');
  return [context, path].filter(Boolean).join('.') || undefined;
}

function validationMessage(error: FastifyError, field: string | undefined): string {
  const issue = error.validation?.[0] as ValidationIssue | undefined;
  if (!issue) return error.message;
  if (issue.keyword === 'additionalProperties') return `${field ?? 'input'}: unknown property`;
  if (issue.keyword === 'required') return `${field ?? 'input'}: required`;
  return `${field ?? 'input'}: ${issue.message ?? 'invalid'}`;
}

export function installErrorHandlers(app: FastifyInstance, onStoreDamaged?: (err: unknown) => void): void {
  app.setErrorHandler((error: FastifyError | GatewayError | Error, request: FastifyRequest, reply: FastifyReply) => {
    // A damaged page of store.db (SQLite says so): an answer the admin can act on, and the gateway's alarm.
    if (isCorruptionError(error)) {
      onStoreDamaged?.(error);
      request.log.error({ err: error }, 'admin.request.failed: the store database is damaged');
      return reply
        .code(503)
        .send(
          errorBody(
            503,
            'SCANRELAY_STORE_DAMAGED',
            'the store database is damaged (SQLite found a bad page): scans are still accepted; the gateway log line store.damaged says how to recover',
          ),
        );
    }
    if ('validation' in error && error.validation) {
      const field = validationField(error.validationContext, error.validation[0] as ValidationIssue);
      return reply.code(400).send(errorBody(400, 'SCANRELAY_INVALID_INPUT', validationMessage(error, field), field));
    }
    if (error instanceof GatewayError) {
      const status = error.httpStatus;
      if (status >= 500) return sendInternal(request, reply, error, status, error.code);
      return reply.code(status).send(errorBody(status, error.code, error.message, error instanceof ValidationError ? error.field : undefined));
    }
    const status = (error as FastifyError).statusCode;
    const code = (error as FastifyError).code;
    // Fastify's own 4xx (bad JSON, unsupported media type, body too large) are safe to explain.
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send(errorBody(status, code ?? 'SCANRELAY_BAD_REQUEST', error.message));
    }
    return sendInternal(request, reply, error, status && status >= 500 ? status : 500, 'SCANRELAY_INTERNAL');
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(404, 'SCANRELAY_ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
}

function sendInternal(request: FastifyRequest, reply: FastifyReply, error: Error, status: number, code: string) {
  request.log.error({ err: error }, 'admin.request.failed');
  return reply.code(status).send(errorBody(status, code, 'internal error; see the gateway log'));
}
