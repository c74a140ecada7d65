// Which Chakra colour palette says what: semantic, so Airflow's theme and dark mode apply.

/** ACTIVE green, REDUCING orange, HALTED red; a state the desk does not know is red too. */
export function statePalette(state: string, known: boolean): string {
  if (!known) return "red";
  if (state === "ACTIVE") return "green";
  if (state === "REDUCING") return "orange";
  return "red";
}

export function stateLabel(state: string, known: boolean): string {
  return known ? state : `unknown state: ${state}`;
}

export function sagaPalette(status: string): string {
  switch (status) {
    case "ok":
      return "green";
    case "in_progress":
      return "blue";
    case "compensated":
      return "orange";
    default:
      return "red";
  }
}

export function breakerPalette(state: string): string {
  if (state === "closed") return "green";
  if (state === "half_open") return "orange";
  return "red";
}

/** A step or undo outcome: succeeded-like green, failed-like red, anything else grey. */
export function outcomePalette(outcome: string): string {
  if (["succeeded", "undone", "ok", "done", "nothing_to_undo"].includes(outcome)) return "green";
  if (/fail|error|unknown|needs_human/.test(outcome)) return "red";
  return "gray";
}
