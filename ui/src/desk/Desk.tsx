// The Desk page (nav): every section polls its own route, so one failing route blanks nothing else.
import { Box, Flex, Heading, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { useTimezone } from "../hooks";
import { ZoneContext } from "../ui";
import { AgentsSection } from "./AgentsSection";
import { DeadLettersSection } from "./DeadLettersSection";
import { ModelsSection } from "./ModelsSection";
import { SagasSection } from "./SagasSection";
import { StateSection } from "./StateSection";
import { StopsSection } from "./StopsSection";
import { VenuesSection } from "./VenuesSection";
import { WatchersSection } from "./WatchersSection";

export function Desk(): ReactNode {
  const zone = useTimezone();
  return (
    <ZoneContext.Provider value={zone}>
      <Box p={4} data-testid="tradeops-desk">
        <Flex align="baseline" gap={3} mb={4} wrap="wrap">
          <Heading size="xl">Trading desk</Heading>
          <Text fontSize="sm" color="fg.muted" data-testid="desk-timezone">
            times in {zone}
          </Text>
        </Flex>
        <StateSection />
        <VenuesSection />
        <StopsSection />
        <SagasSection />
        <DeadLettersSection />
        <WatchersSection />
        <ModelsSection />
        <AgentsSection />
      </Box>
    </ZoneContext.Provider>
  );
}
