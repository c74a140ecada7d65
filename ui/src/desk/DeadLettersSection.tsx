import { Flex, Input, NativeSelect, Text } from "@chakra-ui/react";
import type { ReactNode } from "react";
import { useEffect, useState } from "react";

import { usePoll } from "../hooks";
import { withQuery } from "../links";
import type { DeadLettersBody } from "../types";
import { Grid, Mono, Section, When } from "../ui";

const LIMIT = 50;

/** The text filter goes to the server a moment after the last key press, not on each one. */
function useDebounced(value: string, ms: number): string {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const id = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(id);
  }, [value, ms]);
  return settled;
}

export function DeadLettersSection(): ReactNode {
  const [topic, setTopic] = useState("");
  const [text, setText] = useState("");
  const q = useDebounced(text.trim(), 300);
  const poll = usePoll<DeadLettersBody>(withQuery("dead-letters", { topic, q, limit: LIMIT }));
  const [topics, setTopics] = useState<string[]>([]);
  const body = poll.data;
  useEffect(() => {
    if (body) setTopics(body.topics);
  }, [body]);
  const options = topic && !topics.includes(topic) ? [topic, ...topics] : topics;

  const filters = (
    <Flex gap={2} wrap="wrap">
      <NativeSelect.Root size="sm" width="14rem">
        <NativeSelect.Field
          value={topic}
          onChange={(e) => setTopic(e.currentTarget.value)}
          data-testid="dead-letter-topic"
          aria-label="source topic"
        >
          <option value="">every topic</option>
          {options.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </NativeSelect.Field>
        <NativeSelect.Indicator />
      </NativeSelect.Root>
      <Input
        size="sm"
        width="16rem"
        placeholder="reason or field contains"
        value={text}
        onChange={(e) => setText(e.target.value)}
        data-testid="dead-letter-filter"
        aria-label="reason or field contains"
      />
    </Flex>
  );

  return (
    <Section
      title="Dead letters"
      testId="dead-letters"
      updatedAt={poll.updatedAt}
      error={poll.error}
      loaded={body !== undefined}
      actions={filters}
    >
      {body ? (
        <>
          <Text fontSize="sm" mb={2} data-testid="dead-letter-count">
            {body.matching} matching of {body.total} stored{body.matching > body.items.length ? `, newest ${body.items.length} shown` : ""}
          </Text>
          <Grid
            headers={["when", "source topic", "partition/offset", "field", "reason", "watcher", "status", "event id", "dead-letter offset"]}
            rowTestId="dead-letter-row"
            rowKeys={body.items.map((d) => String(d.id))}
            empty="no dead letter matches"
            rows={body.items.map((d) => [
              <When at={d.at} />,
              d.topic,
              <Mono>{`${d.partition}/${d.offset}`}</Mono>,
              <Mono>{d.field}</Mono>,
              d.reason,
              d.watcher,
              d.status,
              <Mono>{d.event_id ?? "—"}</Mono>,
              <Mono>{d.dlq_offset === null ? "—" : `${d.dlq_partition ?? "?"}/${d.dlq_offset}`}</Mono>,
            ])}
          />
        </>
      ) : null}
    </Section>
  );
}
