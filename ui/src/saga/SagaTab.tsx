// The "Saga" tab of a DAG run: that run's ledger step by step, each undo under its step, what
// still needs a person on top. A run that moved no money has no ledger entry (the API's 404).
import { Box, Flex, Heading, List, Table, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll, useTimezone } from "../hooks";
import { taskLink, withQuery } from "../links";
import { outcomePalette, sagaPalette } from "../palette";
import type { HostProps, SagaBody, SagaStep } from "../types";
import { AppLink, Empty, ErrorNote, Grid, JsonText, Mono, Pill, SubHeading, Updated, When, ZoneContext } from "../ui";

function isFailed(outcome: string): boolean {
  return /fail|error|unknown/.test(outcome);
}

function Amounts({ amounts }: { amounts: Record<string, string> }): ReactNode {
  const entries = Object.entries(amounts);
  if (entries.length === 0) return <Text color="fg.muted">—</Text>;
  return (
    <>
      {entries.map(([name, value]) => (
        <Text key={name} fontSize="sm" whiteSpace="nowrap">
          {name} <Mono>{value}</Mono>
        </Text>
      ))}
    </>
  );
}

function StepRows({ body, step }: { body: SagaBody; step: SagaStep }): ReactNode {
  const failed = isFailed(step.outcome);
  const undo = step.undo;
  return (
    <>
      <Table.Row
        data-testid="saga-step"
        data-step={step.step}
        data-outcome={step.outcome}
        data-failed={String(failed)}
        bg={failed ? "bg.error" : undefined}
      >
        <Table.Cell>
          <Text fontWeight="bold">{step.step}</Text>
          <AppLink href={taskLink(body.dag_id, body.run_id, step.task_id, step.map_index)} testId="saga-task-link">
            {step.map_index >= 0 ? `${step.task_id} [${step.map_index}]` : step.task_id} log
          </AppLink>
        </Table.Cell>
        <Table.Cell>{step.venue ?? "—"}</Table.Cell>
        <Table.Cell>
          <Amounts amounts={step.amounts} />
        </Table.Cell>
        <Table.Cell>
          <Mono>{step.idempotency_key}</Mono>
        </Table.Cell>
        <Table.Cell>
          <Pill palette={outcomePalette(step.outcome)}>{step.outcome}</Pill>
        </Table.Cell>
        <Table.Cell>
          <When at={step.at} />
        </Table.Cell>
      </Table.Row>
      {undo ? (
        <Table.Row data-testid="saga-undo" data-outcome={undo.outcome} bg={isFailed(undo.outcome) ? "bg.error" : "bg.muted"}>
          <Table.Cell ps={8}>undo of {step.step}</Table.Cell>
          <Table.Cell colSpan={2}>{undo.verified ? `verified: ${undo.verified}` : "not verified"}</Table.Cell>
          <Table.Cell>
            <Mono>{undo.idempotency_key ?? "—"}</Mono>
          </Table.Cell>
          <Table.Cell>
            <Pill palette={outcomePalette(undo.outcome)}>{undo.outcome}</Pill>
          </Table.Cell>
          <Table.Cell>
            <When at={undo.at} />
          </Table.Cell>
        </Table.Row>
      ) : null}
    </>
  );
}

function NeedsHuman({ items }: { items: string[] }): ReactNode {
  if (items.length === 0) return null;
  return (
    <Box data-testid="needs-human" borderWidth="2px" borderColor="border.error" bg="bg.error" borderRadius="md" p={3} mb={4}>
      <Heading size="sm" color="fg.error" mb={2}>
        Needs a person
      </Heading>
      <List.Root ps={4}>
        {items.map((item, i) => (
          <List.Item key={i} data-testid="needs-human-item">
            {item}
          </List.Item>
        ))}
      </List.Root>
    </Box>
  );
}

function SagaLedger({ body }: { body: SagaBody }): ReactNode {
  const bad = body.status !== "ok" && body.status !== "in_progress";
  return (
    <>
      <NeedsHuman items={body.needs_human} />
      <Flex
        gap={3}
        align="center"
        wrap="wrap"
        mb={3}
        p={bad ? 3 : 0}
        borderWidth={bad ? "2px" : "0"}
        borderColor="border.error"
        borderRadius="md"
        data-testid="saga-status"
        data-status={body.status}
      >
        <Pill palette={sagaPalette(body.status)}>{body.status}</Pill>
        <Text fontSize="sm">
          from <When at={body.first_at} /> to <When at={body.last_at} />
        </Text>
      </Flex>
      <Box overflowX="auto">
        <Table.Root size="sm" data-testid="saga-steps">
          <Table.Header>
            <Table.Row>
              {["step / task", "venue", "amounts", "idempotency key", "outcome", "at"].map((h) => (
                <Table.ColumnHeader key={h}>{h}</Table.ColumnHeader>
              ))}
            </Table.Row>
          </Table.Header>
          <Table.Body>
            {body.steps.map((step) => (
              <StepRows key={`${step.task_id}:${step.map_index}:${step.step}`} body={body} step={step} />
            ))}
          </Table.Body>
        </Table.Root>
      </Box>
      <SubHeading>Ledger entries (oldest first)</SubHeading>
      <Grid
        headers={["#", "at", "task", "step", "kind", "outcome", "key", "detail"]}
        rowTestId="saga-entry"
        rowKeys={body.entries.map((e) => String(e.id))}
        rows={body.entries.map((e) => [
          e.id,
          <When at={e.at} />,
          e.map_index >= 0 ? `${e.task_id} [${e.map_index}]` : e.task_id,
          e.step,
          e.kind,
          e.outcome,
          <Mono>{e.idempotency_key}</Mono>,
          <JsonText value={e.detail} />,
        ])}
      />
    </>
  );
}

export function SagaTab(props: HostProps): ReactNode {
  const zone = useTimezone();
  const ready = props.dagId !== undefined && props.runId !== undefined;
  const poll = usePoll<SagaBody>(ready ? withQuery("saga", { dag_id: props.dagId, run_id: props.runId }) : null);
  const noMoney = poll.error?.status === 404 && poll.data === undefined;
  return (
    <ZoneContext.Provider value={zone}>
      <Box p={4} data-testid="tradeops-saga">
        <Flex align="baseline" gap={3} mb={3} wrap="wrap">
          <Heading size="md">Saga ledger</Heading>
          <Updated at={poll.updatedAt} />
          <Text fontSize="xs" color="fg.muted">
            times in {zone}
          </Text>
        </Flex>
        {!ready ? <Empty>open a DAG run to see its saga</Empty> : null}
        {noMoney ? (
          <Empty>
            <span data-testid="saga-no-money">this run moved no money</span>
          </Empty>
        ) : poll.error ? (
          <ErrorNote error={poll.error} />
        ) : null}
        {poll.data ? <SagaLedger body={poll.data} /> : null}
      </Box>
    </ZoneContext.Provider>
  );
}
