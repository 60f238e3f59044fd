'use strict';
// Errors from the server, one class per gRPC status (as graphexec.errors in Python): each carries the
// numeric `code`, its name (`codeName`) and the server's own message (`details`).
const { status } = require('@grpc/grpc-js');

class GraphexecError extends Error {
  constructor(message, { code = status.UNKNOWN, metadata = undefined, cause = undefined } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = this.constructor.name;
    this.code = code;
    this.codeName = status[code] ?? 'UNKNOWN';
    this.details = message;
    this.metadata = metadata;
  }
}

const CODES = [
  ['CancelledError', status.CANCELLED], ['UnknownError', status.UNKNOWN],
  ['InvalidArgumentError', status.INVALID_ARGUMENT], ['DeadlineExceededError', status.DEADLINE_EXCEEDED],
  ['NotFoundError', status.NOT_FOUND], ['AlreadyExistsError', status.ALREADY_EXISTS],
  ['PermissionDeniedError', status.PERMISSION_DENIED], ['ResourceExhaustedError', status.RESOURCE_EXHAUSTED],
  ['FailedPreconditionError', status.FAILED_PRECONDITION], ['AbortedError', status.ABORTED],
  ['OutOfRangeError', status.OUT_OF_RANGE], ['UnimplementedError', status.UNIMPLEMENTED],
  ['InternalError', status.INTERNAL], ['UnavailableError', status.UNAVAILABLE],
  ['DataLossError', status.DATA_LOSS], ['UnauthenticatedError', status.UNAUTHENTICATED],
];

// Named classes (`class X extends ...` inside an object literal keeps the name X for stack traces).
const CLASSES = Object.fromEntries(CODES.map(([name]) => [name, ({ [name]: class extends GraphexecError {} })[name]]));
const BY_CODE = new Map(CODES.map(([name, code]) => [code, CLASSES[name]]));

/** The Error subclass for a gRPC ServiceError (anything with `code` and `details`). */
function fromGrpcError(error) {
  const code = error.code ?? status.UNKNOWN;
  const Cls = BY_CODE.get(code) ?? CLASSES.UnknownError;
  return new Cls(error.details || error.message || '', { code, metadata: error.metadata, cause: error });
}

module.exports = { GraphexecError, ...CLASSES, fromGrpcError };
