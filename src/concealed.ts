/**
 * The base of the values that hold a secret (a private key, an access token):
 * `String()`, `JSON.stringify` and `util.inspect` all show only a label.
 */
export abstract class Concealed {
  readonly #label: string;
  protected constructor(label: string) {
    this.#label = label;
  }
  toString(): string {
    return this.#label;
  }
  toJSON(): string {
    return this.#label;
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.#label;
  }
}
