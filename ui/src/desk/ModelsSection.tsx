import { Flex, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll } from "../hooks";
import type { ModelsBody } from "../types";
import { Empty, Grid, Mono, Pill, Section, SubHeading, WarnNote, When } from "../ui";

function Canary({ body }: { body: ModelsBody }): ReactNode {
  const c = body.canary;
  if (c === null) return <Empty>no canary running</Empty>;
  return (
    <Text fontSize="sm" data-testid="model-canary">
      version <Mono>{c.version}</Mono>, stage {c.stage ?? "—"}, on {c.canary_instruments} of {c.instruments} instruments,
      started <When at={c.started_at} />
      {c.dag_run_id ? `, run ${c.dag_run_id}` : ""}
    </Text>
  );
}

export function ModelsSection(): ReactNode {
  const poll = usePoll<ModelsBody>("models");
  const body = poll.data;
  return (
    <Section title="Models" testId="models" updatedAt={poll.updatedAt} error={poll.error} loaded={body !== undefined}>
      {body ? (
        <>
          {body.error ? <WarnNote text={body.error} /> : null}
          {!body.available ? <Empty>the model registry is not available</Empty> : null}
          <Flex gap={2} align="center" wrap="wrap" data-testid="model-aliases">
            <Text fontSize="sm">
              model <Mono>{body.model}</Mono>
            </Text>
            {Object.entries(body.aliases).map(([alias, version]) => (
              <Pill key={alias} palette={alias === "champion" ? "green" : "blue"}>
                {`${alias}: v${version}`}
              </Pill>
            ))}
          </Flex>
          <SubHeading>Canary</SubHeading>
          <Canary body={body} />
          <SubHeading>Routing</SubHeading>
          <Grid
            headers={["venue", "symbol", "version", "role", "updated", "by", "reason"]}
            rowTestId="model-route"
            rows={body.routes.map((r) => [
              r.venue,
              r.symbol,
              <Mono>{r.version}</Mono>,
              <Pill palette={r.role === "champion" ? "green" : "blue"}>{r.role}</Pill>,
              <When at={r.updated_at} />,
              r.updated_by,
              r.reason,
            ])}
          />
          <SubHeading>Recent changes</SubHeading>
          <Grid
            headers={["when", "kind", "what", "by", "reason"]}
            rowTestId="model-change"
            rows={body.changes.map((c) => [<When at={c.at} />, c.kind, c.what, c.actor, c.reason])}
          />
        </>
      ) : null}
    </Section>
  );
}
