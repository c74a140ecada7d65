import { Box, Flex, Heading, SimpleGrid, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll } from "../hooks";
import { breakerPalette } from "../palette";
import type { Venue, VenuesBody } from "../types";
import { Empty, Grid, Mono, Pill, Section, SubHeading, WarnNote, When, YesNo } from "../ui";

function Breaker({ venue }: { venue: Venue }): ReactNode {
  const b = venue.breaker;
  return (
    <Box data-testid="venue-breaker" data-breaker={b.state}>
      <Text fontSize="sm">
        breaker <Pill palette={breakerPalette(b.state)}>{b.state}</Pill> {b.consecutive_failures} consecutive failures
        {b.opened_until ? (
          <>
            , open until <When at={b.opened_until} />
          </>
        ) : null}
      </Text>
      {b.last_error ? (
        <Text fontSize="sm" color="fg.error">
          last error: {b.last_error}
        </Text>
      ) : null}
    </Box>
  );
}

function VenueCard({ venue }: { venue: Venue }): ReactNode {
  return (
    <Box
      data-testid={`venue-${venue.venue}`}
      data-reachable={String(venue.reachable)}
      borderWidth="1px"
      borderColor={venue.reachable ? "border" : "border.error"}
      borderRadius="md"
      p={3}
    >
      <Flex align="center" gap={2} wrap="wrap">
        <Heading size="sm">{venue.venue}</Heading>
        <Text fontSize="sm" color="fg.muted">
          {venue.kind}
        </Text>
        <YesNo ok={venue.reachable} yes="reachable" no="unreachable" testId="venue-reachable" />
        <Text fontSize="xs" color="fg.muted">
          checked <When at={venue.checked_at} />
          {venue.latency_ms !== null ? ` in ${venue.latency_ms} ms` : ""}
        </Text>
      </Flex>
      {venue.error ? <WarnNote text={venue.error} testId="venue-error" /> : null}
      <Breaker venue={venue} />
      <SubHeading>PnL</SubHeading>
      {venue.pnl ? (
        <Text fontSize="sm" data-testid="venue-pnl">
          realized <Mono>{venue.pnl.realized ?? "—"}</Mono>, unrealized <Mono>{venue.pnl.unrealized ?? "—"}</Mono>{" "}
          {venue.pnl.currency}
        </Text>
      ) : (
        <Empty>not known on this venue</Empty>
      )}
      <SubHeading>Balances</SubHeading>
      <Grid
        headers={["asset", "free", "used", "total"]}
        rowTestId="venue-balance"
        rows={venue.balances.map((b) => [b.asset, <Mono>{b.free}</Mono>, <Mono>{b.used}</Mono>, <Mono>{b.total}</Mono>])}
      />
      <SubHeading>Positions</SubHeading>
      <Grid
        headers={["symbol", "side", "size", "entry", "mark", "unrealized PnL"]}
        rowTestId="venue-position"
        rows={venue.positions.map((p) => [
          p.symbol,
          p.side,
          <Mono>{p.size}</Mono>,
          <Mono>{p.entry_price}</Mono>,
          <Mono>{p.mark_price}</Mono>,
          <Mono>{p.unrealized_pnl}</Mono>,
        ])}
      />
      <SubHeading>Net exposure per base asset</SubHeading>
      <Grid
        headers={["asset", "spot", "perp", "net", "quote"]}
        rowTestId="venue-exposure"
        rows={venue.exposure.map((e) => [e.asset, <Mono>{e.spot}</Mono>, <Mono>{e.perp}</Mono>, <Mono>{e.net}</Mono>, e.quote])}
      />
      <SubHeading>Open orders</SubHeading>
      <Grid
        headers={["client order id", "symbol", "side", "type", "amount", "price", "filled", "status", "created"]}
        rowTestId="venue-order"
        rows={venue.open_orders.map((o) => [
          <Mono>{o.client_order_id}</Mono>,
          o.symbol,
          o.side,
          o.type,
          <Mono>{o.amount}</Mono>,
          <Mono>{o.price ?? "—"}</Mono>,
          <Mono>{o.filled}</Mono>,
          o.status,
          <When at={o.created_at} />,
        ])}
      />
    </Box>
  );
}

export function VenuesSection(): ReactNode {
  const poll = usePoll<VenuesBody>("venues");
  const body = poll.data;
  return (
    <Section title="Venues" testId="venues" updatedAt={poll.updatedAt} error={poll.error} loaded={body !== undefined}>
      {body ? (
        body.venues.length === 0 ? (
          <Empty>no venue configured</Empty>
        ) : (
          <SimpleGrid columns={{ base: 1, "2xl": 2 }} gap={3}>
            {body.venues.map((v) => (
              <VenueCard key={v.venue} venue={v} />
            ))}
          </SimpleGrid>
        )
      ) : null}
    </Section>
  );
}
