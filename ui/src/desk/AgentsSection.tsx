import { Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll } from "../hooks";
import { runLink } from "../links";
import type { Agent, AgentsBody } from "../types";
import { AppLink, Grid, Mono, Section, WarnNote, When } from "../ui";

function LastDecision({ agent }: { agent: Agent }): ReactNode {
  const last = agent.last;
  if (last === null) return <Text color="fg.muted">no run yet</Text>;
  return (
    <>
      <Text fontSize="sm">
        <strong>{last.decision}</strong> → {last.outcome}
        {last.rejected_by ? ` (rejected by ${last.rejected_by})` : ""}, score <Mono>{String(last.score ?? "—")}</Mono> at{" "}
        <Mono>{last.price ?? "—"}</Mono>, {last.verdict}
      </Text>
      <Text fontSize="xs" color="fg.muted">
        <When at={last.at} /> <AppLink href={runLink(agent.dag_id, last.run_id)}>{last.run_id}</AppLink>
      </Text>
      <Text fontSize="xs" data-testid="agent-rationale">
        {last.rationale}
      </Text>
    </>
  );
}

export function AgentsSection(): ReactNode {
  const poll = usePoll<AgentsBody>("agents");
  const body = poll.data;
  return (
    <Section title="Trading agents" testId="agents" updatedAt={poll.updatedAt} error={poll.error} loaded={body !== undefined}>
      {body ? (
        <>
          {body.error ? <WarnNote text={body.error} /> : null}
          <Grid
            headers={["agent", "instrument", "schedule", "runs", "position", "equity", "PnL", "max drawdown", "hit rate", "last decision"]}
            rowTestId="agent-row"
            rowKeys={body.agents.map((a) => a.agent)}
            empty="no trading agent configured"
            rows={body.agents.map((a) => [
              a.agent,
              `${a.symbol} on ${a.venue}`,
              `${a.schedule} (${a.timezone})`,
              a.runs,
              <Mono>{a.position}</Mono>,
              <Mono>{a.equity ?? "—"}</Mono>,
              <Mono>{a.pnl ?? "—"}</Mono>,
              <Mono>{a.max_drawdown ?? "—"}</Mono>,
              <Mono>{a.hit_rate ?? "—"}</Mono>,
              <LastDecision agent={a} />,
            ])}
          />
        </>
      ) : null}
    </Section>
  );
}
