import { Box, Flex, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll } from "../hooks";
import { runLink } from "../links";
import type { StopReport, StopsBody } from "../types";
import { AppLink, Empty, Grid, Mono, Pill, Section, SubHeading, When, YesNo } from "../ui";

function listText(items: string[]): string {
  return items.length ? items.join(", ") : "—";
}

function StopCard({ report }: { report: StopReport }): ReactNode {
  return (
    <Box
      data-testid="stop-report"
      data-all-flat={String(report.all_flat)}
      borderWidth="1px"
      borderColor={report.all_flat ? "border" : "border.error"}
      borderRadius="md"
      p={3}
      mb={3}
    >
      <Flex gap={2} align="center" wrap="wrap">
        <Pill palette="gray">{report.stage}</Pill>
        <YesNo ok={report.all_flat} yes="all flat" no="not flat" />
        <When at={report.at} />
        <Text fontSize="sm">trading state {report.trading_state}</Text>
        <AppLink href={runLink(report.dag_id, report.run_id)}>{report.run_id}</AppLink>
      </Flex>
      <Text fontSize="xs" color="fg.muted">
        event {report.event_id}; triggered by {listText(report.trigger_event_ids)}
      </Text>
      <SubHeading>Per venue</SubHeading>
      <Grid
        headers={["venue", "status", "rounds", "canceled", "closed", "open positions", "open orders", "pending open", "unsellable", "error"]}
        rowTestId="stop-venue"
        rows={report.venues.map((v) => [
          v.venue,
          <Pill palette={v.flat ? "green" : "red"}>{v.status}</Pill>,
          v.rounds,
          v.orders_canceled,
          v.positions_closed,
          v.open_positions,
          v.open_orders,
          listText(v.pending_open),
          listText(v.unsellable),
          v.error ?? "",
        ])}
      />
      <SubHeading>Net exposure</SubHeading>
      <Grid
        headers={["asset", "spot", "perp", "net", "quote", "flat"]}
        rowTestId="stop-net-exposure"
        rows={report.net_exposure.map((e) => [
          e.asset,
          <Mono>{e.spot}</Mono>,
          <Mono>{e.perp}</Mono>,
          <Mono>{e.net}</Mono>,
          e.quote,
          e.flat === undefined ? "" : e.flat ? "yes" : "no",
        ])}
      />
    </Box>
  );
}

export function StopsSection(): ReactNode {
  const poll = usePoll<StopsBody>("stops?limit=5");
  const body = poll.data;
  return (
    <Section title="Emergency stops" testId="stops" updatedAt={poll.updatedAt} error={poll.error} loaded={body !== undefined}>
      {body ? (
        body.reports.length === 0 ? (
          <Empty>no emergency stop reported</Empty>
        ) : (
          body.reports.map((r) => <StopCard key={`${r.event_id}:${r.stage}:${r.at ?? ""}`} report={r} />)
        )
      ) : null}
    </Section>
  );
}
