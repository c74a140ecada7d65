import { Flex } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll } from "../hooks";
import { runLink, sagaTabLink } from "../links";
import { sagaPalette } from "../palette";
import type { SagasBody } from "../types";
import { AppLink, Grid, Pill, Section, When } from "../ui";

export function SagasSection(): ReactNode {
  const poll = usePoll<SagasBody>("sagas?limit=30");
  const body = poll.data;
  return (
    <Section title="Recent sagas" testId="sagas" updatedAt={poll.updatedAt} error={poll.error} loaded={body !== undefined}>
      {body ? (
        <Grid
          headers={["last entry", "status", "DAG", "run", "steps ok", "failed", "undone", "undo failed", ""]}
          rowTestId="saga-row"
          rowKeys={body.runs.map((r) => `${r.dag_id}/${r.run_id}`)}
          rowProps={(i) => ({ "data-status": body.runs[i]?.status })}
          empty="no saga has run"
          rows={body.runs.map((r) => [
            <When at={r.last_at} />,
            <Pill palette={sagaPalette(r.status)}>{r.status}</Pill>,
            r.dag_id,
            <AppLink href={runLink(r.dag_id, r.run_id)} testId="saga-run-link">
              {r.run_id}
            </AppLink>,
            r.steps_succeeded,
            r.steps_failed,
            r.undone,
            r.undo_failed,
            <Flex gap={2}>
              <AppLink href={sagaTabLink(r.dag_id, r.run_id)} testId="saga-tab-link">
                Saga tab
              </AppLink>
            </Flex>,
          ])}
        />
      ) : null}
    </Section>
  );
}
