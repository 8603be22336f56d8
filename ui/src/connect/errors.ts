// The error banner. The engine's errors carry a typed `ErrorCode`: what to
// do next is chosen by code (the record below must name every code, so a
// new code in the bindings fails the type check until it has its hint).
import type { ErrorCode } from "../bindings";

/** Where an error's action leads. */
export type ErrorAction = "profiles" | null;

const HINTS: Record<ErrorCode, { hint: string; action: ErrorAction }> = {
  auth_failed: { hint: "Sign in again with a valid token or key.", action: "profiles" },
  bad_version: { hint: "The server speaks another protocol version; update the app or the server.", action: null },
  bad_hello: { hint: "The server refused the connection's opening; check the profile.", action: "profiles" },
  config_error: { hint: "Check the profile: its URL, CA file or pin.", action: "profiles" },
  handshake_failed: { hint: "Check the network, the server's address and its certificate.", action: "profiles" },
  control_plane_error: { hint: "The control plane failed; check the device id and try again.", action: "profiles" },
  session_lost: { hint: "The connection dropped; the app tries to reconnect.", action: null },
  reconnect_failed: { hint: "Press Connect to try again.", action: null },
  stream_limit: { hint: "Too many connections at once; close some and retry.", action: null },
  protocol_error: { hint: "The server sent something unexpected.", action: null },
  server_error: { hint: "The server reported an error; try again later.", action: null },
  unsupported: { hint: "The server or the protocol does not support this.", action: null },
};

/** Whether a command's (untyped) code is one of the engine's codes. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(HINTS, code);
}

/** What to do after an engine error. */
export function errorHint(code: ErrorCode): { hint: string; action: ErrorAction } {
  return HINTS[code];
}

const ACTION_LABELS: Record<Exclude<ErrorAction, null>, string> = {
  profiles: "Open profiles",
};

export class ErrorBox {
  private action: ErrorAction = null;

  constructor(
    private box: HTMLElement,
    private onAction: (action: Exclude<ErrorAction, null>) => void,
  ) {
    this.part("dismiss").addEventListener("click", () => this.show(null));
    this.part("action").addEventListener("click", () => {
      if (this.action) this.onAction(this.action);
    });
  }

  /** One of the banner's parts (`data-part`: code, message, hint, action,
   * dismiss), so that each panel can have its own banner. */
  private part(name: string): HTMLElement {
    return this.box.querySelector(`[data-part="${name}"]`) as HTMLElement;
  }

  /** Shows an error (a command's or the engine's), or hides the banner. */
  show(error: { code: string; message: string } | null): void {
    this.box.hidden = !error;
    this.part("code").textContent = error ? error.code : "";
    this.part("message").textContent = error ? error.message : "";
    const next = error && isErrorCode(error.code) ? errorHint(error.code) : null;
    const hint = this.part("hint");
    hint.textContent = next?.hint ?? "";
    hint.hidden = !next;
    this.action = next?.action ?? null;
    const button = this.part("action");
    button.hidden = !this.action;
    button.textContent = this.action ? ACTION_LABELS[this.action] : "";
  }
}
