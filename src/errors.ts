/** An error with a machine-readable `code` beside its one-line message (the shape of Node's own errors). */
export class CodedError<Code> extends Error {
  readonly code: Code;
  constructor(code: Code, message: string) {
    super(message);
    this.code = code;
  }
}
