// The two audited actions: HALT (the safe direction: one click and a confirmation with a reason)
// and a request to go back to ACTIVE or REDUCING, which only starts the trading_state_control DAG:
// a person approves it under Airflow's Required Actions.
import { Button, Dialog, Field, Flex, NativeSelect, Portal, Text, Textarea } from "@chakra-ui/react";
import type { ReactNode } from "react";
import { useEffect, useState } from "react";

import { ApiError, postAction } from "../api";
import { requiredActionsLink, runLink } from "../links";
import type { HaltResponse, RequestResponse } from "../types";
import { AppLink, ErrorNote } from "../ui";

interface DialogProps {
  open: boolean;
  onClose: () => void;
}

function asApiError(caught: unknown): ApiError {
  return caught instanceof ApiError ? caught : new ApiError(0, String(caught));
}

function ReasonField(props: { value: string; onChange: (v: string) => void; testId: string; invalid: boolean }) {
  return (
    <Field.Root required invalid={props.invalid}>
      <Field.Label>
        Reason <Field.RequiredIndicator />
      </Field.Label>
      <Textarea
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        data-testid={props.testId}
        placeholder="what happened, who asked"
      />
      <Field.ErrorText>a reason is required</Field.ErrorText>
    </Field.Root>
  );
}

export function HaltDialog(props: DialogProps & { onDone: () => void }): ReactNode {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [touched, setTouched] = useState(false);
  useEffect(() => {
    if (props.open) {
      setReason("");
      setError(undefined);
      setTouched(false);
    }
  }, [props.open]);

  const confirm = async (): Promise<void> => {
    setTouched(true);
    if (reason.trim() === "") return;
    setBusy(true);
    try {
      await postAction<HaltResponse>("state/halt", "halt", { reason: reason.trim() });
      props.onDone();
      props.onClose();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog.Root open={props.open} onOpenChange={(e) => (e.open ? undefined : props.onClose())} role="alertdialog">
      <Portal>
        <Dialog.Backdrop />
        <Dialog.Positioner>
          <Dialog.Content data-testid="halt-dialog">
            <Dialog.Header>
              <Dialog.Title>HALT trading now</Dialog.Title>
            </Dialog.Header>
            <Dialog.Body>
              <Text mb={3}>
                No new orders on any venue; only reduce-only exits and saga compensations go through. Going back to
                ACTIVE needs an approved request.
              </Text>
              <ReasonField value={reason} onChange={setReason} testId="halt-reason" invalid={touched && !reason.trim()} />
              {error ? <ErrorNote error={error} /> : null}
            </Dialog.Body>
            <Dialog.Footer>
              <Button variant="outline" onClick={props.onClose} data-testid="halt-cancel">
                Cancel
              </Button>
              <Button colorPalette="red" onClick={() => void confirm()} loading={busy} data-testid="halt-confirm">
                HALT
              </Button>
            </Dialog.Footer>
          </Dialog.Content>
        </Dialog.Positioner>
      </Portal>
    </Dialog.Root>
  );
}

const REQUESTABLE = ["ACTIVE", "REDUCING"] as const;

export function RequestDialog(props: DialogProps): ReactNode {
  const [state, setState] = useState<string>("REDUCING");
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [touched, setTouched] = useState(false);
  const [done, setDone] = useState<RequestResponse | undefined>(undefined);
  useEffect(() => {
    if (props.open) {
      setReason("");
      setError(undefined);
      setTouched(false);
      setDone(undefined);
    }
  }, [props.open]);

  const submit = async (): Promise<void> => {
    setTouched(true);
    if (reason.trim() === "") return;
    setBusy(true);
    try {
      setDone(await postAction<RequestResponse>("state/request", "request", { state, reason: reason.trim() }));
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog.Root open={props.open} onOpenChange={(e) => (e.open ? undefined : props.onClose())}>
      <Portal>
        <Dialog.Backdrop />
        <Dialog.Positioner>
          <Dialog.Content data-testid="request-dialog">
            <Dialog.Header>
              <Dialog.Title>Request a trading state</Dialog.Title>
            </Dialog.Header>
            <Dialog.Body>
              {done ? (
                <Flex direction="column" gap={2} data-testid="request-done">
                  <Text>
                    Requested: a run of <code>{done.dag_id}</code> waits for an approval.
                  </Text>
                  <AppLink href={runLink(done.dag_id, done.run_id)} testId="request-run-link">
                    run {done.run_id}
                  </AppLink>
                  <AppLink href={requiredActionsLink()} testId="request-required-actions-link">
                    Required Actions
                  </AppLink>
                </Flex>
              ) : (
                <Flex direction="column" gap={3}>
                  <Field.Root>
                    <Field.Label>State</Field.Label>
                    <NativeSelect.Root>
                      <NativeSelect.Field
                        value={state}
                        onChange={(e) => setState(e.currentTarget.value)}
                        data-testid="request-state"
                      >
                        {REQUESTABLE.map((s) => (
                          <option key={s} value={s}>
                            {s}
                          </option>
                        ))}
                      </NativeSelect.Field>
                      <NativeSelect.Indicator />
                    </NativeSelect.Root>
                  </Field.Root>
                  <ReasonField
                    value={reason}
                    onChange={setReason}
                    testId="request-reason"
                    invalid={touched && !reason.trim()}
                  />
                  {error ? <ErrorNote error={error} /> : null}
                </Flex>
              )}
            </Dialog.Body>
            <Dialog.Footer>
              <Button variant="outline" onClick={props.onClose} data-testid="request-close">
                {done ? "Close" : "Cancel"}
              </Button>
              {done ? null : (
                <Button onClick={() => void submit()} loading={busy} data-testid="request-submit">
                  Request approval
                </Button>
              )}
            </Dialog.Footer>
          </Dialog.Content>
        </Dialog.Positioner>
      </Portal>
    </Dialog.Root>
  );
}
