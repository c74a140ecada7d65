// The "Trading state" widget on Airflow's home dashboard: the state, why, since when, and the way
// to the Desk.
import { Box, Flex, Heading, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll, useTimezone } from "./hooks";
import { deskLink } from "./links";
import { statePalette, stateLabel } from "./palette";
import type { StateBody } from "./types";
import { AppLink, ErrorNote, Updated, When, ZoneContext } from "./ui";

export function StateWidget(): ReactNode {
  const zone = useTimezone();
  const poll = usePoll<StateBody>("state");
  const record = poll.data?.state;
  return (
    <ZoneContext.Provider value={zone}>
      <Box data-testid="tradeops-state-widget" borderWidth="1px" borderColor="border" borderRadius="md" p={4} bg="bg">
        <Flex align="baseline" gap={3} mb={2} wrap="wrap">
          <Heading size="md">Trading state</Heading>
          <Updated at={poll.updatedAt} />
          <Box flex="1" />
          <AppLink href={deskLink()} testId="widget-desk-link">
            Open the desk
          </AppLink>
        </Flex>
        {poll.error ? <ErrorNote error={poll.error} /> : null}
        {record ? (
          <Flex gap={3} align="center" wrap="wrap" colorPalette={statePalette(record.state, record.known)}>
            <Box bg="colorPalette.solid" color="colorPalette.contrast" borderRadius="md" px={3} py={1}>
              <Text fontWeight="bold" data-testid="widget-state" data-state={record.state} data-known={String(record.known)}>
                {stateLabel(record.state, record.known)}
              </Text>
            </Box>
            <Text data-testid="widget-reason">{record.reason}</Text>
            <Text fontSize="sm" color="fg.muted">
              since <When at={record.changed_at} /> ({zone}), by {record.changed_by}
            </Text>
          </Flex>
        ) : null}
      </Box>
    </ZoneContext.Provider>
  );
}
