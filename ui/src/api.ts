// The only way the UI talks to the app: typed commands and events, with
// types generated from the Rust side (bindings.ts).
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { CommandError, Commands, ErrorCode, Events, Overview } from "./bindings";

/** Calls a command; rejects with a `CommandError`. */
export async function call<K extends keyof Commands>(
  command: K,
  args: Commands[K]["args"],
): Promise<Commands[K]["returns"]> {
  try {
    return (await invoke(command, args as Record<string, unknown>)) as Commands[K]["returns"];
  } catch (e) {
    throw asCommandError(e);
  }
}

/** Subscribes to an event. */
export function on<K extends keyof Events>(
  event: K,
  handler: (payload: Events[K]) => void,
): Promise<UnlistenFn> {
  return listen<Events[K]>(event, (e) => handler(e.payload));
}

/** A failure the window shows: a command's, the engine's, or the window's
 * own (an IPC failure, the clipboard). */
export type ShownError =
  | CommandError
  | { code: ErrorCode; message: string }
  | { code: "internal" | "clipboard"; message: string };

/** Whatever a command threw, as an error to show. */
export function asCommandError(e: unknown): ShownError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    return e as CommandError;
  }
  return { code: "internal", message: String(e) };
}

/** What a panel does around a command that returns the overview. */
export interface CommandView {
  /** Disables the panel's controls while the command runs, and back. */
  setBusy(busy: boolean): void;
  apply(overview: Overview): void;
  showError(error: ShownError): void;
}

/** Runs `command` with the view busy; applies its overview or shows its
 * error. Resolves to whether it succeeded. */
export async function runCommand(view: CommandView, command: () => Promise<Overview>): Promise<boolean> {
  view.setBusy(true);
  try {
    view.apply(await command());
    return true;
  } catch (e) {
    view.showError(asCommandError(e));
    return false;
  } finally {
    view.setBusy(false);
  }
}
