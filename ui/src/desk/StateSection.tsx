import { Box, Button, Flex, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";
import { useState } from "react";

import { usePoll } from "../hooks";
import { statePalette, stateLabel } from "../palette";
import type { StateBody, StateRecord } from "../types";
import { Grid, Pill, Section, SubHeading, When } from "../ui";
import { HaltDialog, RequestDialog } from "./StateActions";

export function StateBanner({ record }: { record: StateRecord }): ReactNode {
  const palette = statePalette(record.state, record.known);
  return (
    <Box colorPalette={palette} bg="colorPalette.solid" color="colorPalette.contrast" borderRadius="md" p={4}>
      <Text
        fontSize="2xl"
        fontWeight="bold"
        data-testid="desk-state"
        data-state={record.state}
        data-known={String(record.known)}
      >
        {stateLabel(record.state, record.known)}
      </Text>
      <Text data-testid="desk-state-reason">{record.reason}</Text>
      <Text fontSize="sm">
        by <span data-testid="desk-state-by">{record.changed_by}</span> at <When at={record.changed_at} />
      </Text>
    </Box>
  );
}

export function StateSection(): ReactNode {
  const poll = usePoll<StateBody>("state");
  const [halting, setHalting] = useState(false);
  const [requesting, setRequesting] = useState(false);
  const actions = (
    <Flex gap={2}>
      <Button colorPalette="red" size="sm" onClick={() => setHalting(true)} data-testid="halt-button">
        HALT now
      </Button>
      <Button variant="outline" size="sm" onClick={() => setRequesting(true)} data-testid="request-button">
        Request ACTIVE / REDUCING
      </Button>
    </Flex>
  );
  const body = poll.data;
  return (
    <Section
      title="Trading state"
      testId="state-section"
      updatedAt={poll.updatedAt}
      error={poll.error}
      loaded={body !== undefined}
      actions={actions}
    >
      {body ? (
        <>
          <StateBanner record={body.state} />
          <SubHeading>History</SubHeading>
          <Grid
            headers={["when", "state", "by", "reason"]}
            rowTestId="state-history-row"
            rows={body.history.map((h) => [
              <When at={h.changed_at} />,
              <Pill palette={statePalette(h.state, h.known)}>{stateLabel(h.state, h.known)}</Pill>,
              h.changed_by,
              // a stop names every event it handled: three lines here, the whole text on hover
              <Text lineClamp={3} title={h.reason}>
                {h.reason}
              </Text>,
            ])}
          />
        </>
      ) : null}
      <HaltDialog open={halting} onClose={() => setHalting(false)} onDone={poll.reload} />
      <RequestDialog open={requesting} onClose={() => setRequesting(false)} />
    </Section>
  );
}
