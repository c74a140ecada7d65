import { Flex, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";

import { usePoll } from "../hooks";
import type { WatchersBody } from "../types";
import { Grid, Mono, Pill, Section, When, YesNo } from "../ui";

function brokerPalette(state: string): string {
  return state === "up" ? "green" : state === "connecting" ? "orange" : "red";
}

export function WatchersSection(): ReactNode {
  const poll = usePoll<WatchersBody>("watchers");
  const body = poll.data;
  return (
    <Section title="Kafka watchers" testId="watchers" updatedAt={poll.updatedAt} error={poll.error} loaded={body !== undefined}>
      {body ? (
        <>
          <Flex gap={2} align="center" wrap="wrap" mb={2} data-testid="broker-status" data-up={String(body.broker.up)}>
            <Text fontSize="sm">
              broker <Mono>{body.broker.bootstrap}</Mono>
            </Text>
            <YesNo ok={body.broker.up} yes="up" no="down" />
            <Text fontSize="xs" color="fg.muted">
              checked <When at={body.broker.checked_at} />
            </Text>
            {body.broker.error ? (
              <Text fontSize="sm" color="fg.error">
                {body.broker.error}
              </Text>
            ) : null}
          </Flex>
          <Text fontSize="xs" color="fg.muted" mb={2}>
            alive = a heartbeat within {body.stale_after_seconds} s
          </Text>
          <Grid
            headers={["watcher", "topic", "alive", "heartbeat", "last message", "lag", "broker", "messages", "fired", "dead letters", "stale", "conflicts", "last error"]}
            rowTestId="watcher-row"
            rowKeys={body.watchers.map((w) => `${w.watcher}:${w.process}`)}
            empty="no watcher has reported"
            rows={body.watchers.map((w) => [
              <Text as="span" title={`group ${w.group_id}, process ${w.process}, started ${w.started_at ?? "?"}`}>
                {w.watcher}
              </Text>,
              w.topic,
              <YesNo ok={w.alive} yes="alive" no="silent" testId="watcher-alive" />,
              <When at={w.heartbeat_at} />,
              <When at={w.last_message_at} />,
              <Mono>{w.lag === null ? "—" : String(w.lag)}</Mono>,
              <>
                <Pill palette={brokerPalette(w.broker_state)}>{w.broker_state}</Pill>
                {w.broker_down_since ? (
                  <Text fontSize="xs">
                    since <When at={w.broker_down_since} />
                  </Text>
                ) : null}
              </>,
              w.messages,
              w.fired,
              w.dead_lettered,
              w.stale,
              w.conflicts,
              w.last_error ?? "",
            ])}
          />
        </>
      ) : null}
    </Section>
  );
}
