// Small building blocks shared by the three views. Every value is rendered as text (React escapes
// it); nothing here ever sets inner HTML.
import { Alert, Badge, Box, Code, Flex, Heading, Link, Spinner, Table, Text } from "@chakra-ui/react";
import type { MouseEvent, ReactNode } from "react";
import { createContext, useContext } from "react";

import type { ApiError } from "./api";
import { useNow } from "./hooks";
import { loginLink } from "./links";
import { ago, formatTime } from "./time";

export const ZoneContext = createContext("UTC");

export function useZone(): string {
  return useContext(ZoneContext);
}

/** A time in the user's zone, with the exact UTC text on hover. */
export function When({ at }: { at: string | null | undefined }): ReactNode {
  const zone = useZone();
  return (
    <Text as="span" whiteSpace="nowrap" title={at ?? undefined}>
      {formatTime(at, zone)}
    </Text>
  );
}

type Navigate = (to: string) => void;

/** The host's router (Airflow sets globalThis.ReactRouterDOM), so a link needs no page reload. */
function useHostNavigate(): Navigate | undefined {
  const router = (globalThis as { ReactRouterDOM?: { useNavigate?: () => Navigate } }).ReactRouterDOM;
  return router?.useNavigate?.();
}

function plainClick(event: MouseEvent<HTMLAnchorElement>): boolean {
  return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
}

/**
 * A link inside Airflow, relative to its <base href>. A plain click on a page of Airflow's UI goes
 * through its router (the host's router has the base path as its basename); `external` links (the
 * login, served by the API server) always load the page.
 */
export function AppLink(props: { href: string; children: ReactNode; testId?: string; external?: boolean }): ReactNode {
  const navigate = useHostNavigate();
  const onClick = (event: MouseEvent<HTMLAnchorElement>): void => {
    if (props.external || navigate === undefined || !plainClick(event)) return;
    event.preventDefault();
    navigate(`/${props.href}`);
  };
  return (
    <Link href={props.href} onClick={onClick} color="fg.info" textDecoration="underline" data-testid={props.testId}>
      {props.children}
    </Link>
  );
}

export function Mono({ children }: { children: ReactNode }): ReactNode {
  return (
    <Text as="span" fontFamily="mono" fontSize="sm" wordBreak="break-all">
      {children}
    </Text>
  );
}

/** Raw JSON (a ledger entry's detail), as text. */
export function JsonText({ value }: { value: unknown }): ReactNode {
  return (
    <Code display="block" whiteSpace="pre-wrap" wordBreak="break-all" fontSize="xs" p={2}>
      {JSON.stringify(value, null, 2)}
    </Code>
  );
}

export function Pill(props: { palette: string; children: ReactNode; testId?: string }): ReactNode {
  return (
    <Badge colorPalette={props.palette} variant="solid" data-testid={props.testId}>
      {props.children}
    </Badge>
  );
}

export function YesNo(props: { ok: boolean; yes: string; no: string; testId?: string }): ReactNode {
  return (
    <Pill palette={props.ok ? "green" : "red"} testId={props.testId}>
      {props.ok ? props.yes : props.no}
    </Pill>
  );
}

/** The error of one request, with the way back to the login when the session expired. */
export function ErrorNote({ error }: { error: ApiError }): ReactNode {
  return (
    <Alert.Root status="error" size="sm" data-testid="section-error">
      <Alert.Indicator />
      <Alert.Content>
        <Alert.Description>
          {error.message}
          {error.sessionExpired ? (
            <>
              {" "}
              <AppLink href={loginLink(window.location.href)} testId="login-link" external>
                log in
              </AppLink>
            </>
          ) : null}
        </Alert.Description>
      </Alert.Content>
    </Alert.Root>
  );
}

/** A text note for a section whose body says it could not be read (`error` in the JSON). */
export function WarnNote({ text, testId }: { text: string; testId?: string }): ReactNode {
  return (
    <Alert.Root status="warning" size="sm" data-testid={testId ?? "section-warning"}>
      <Alert.Indicator />
      <Alert.Content>
        <Alert.Description>{text}</Alert.Description>
      </Alert.Content>
    </Alert.Root>
  );
}

export function Updated({ at }: { at: number | undefined }): ReactNode {
  const now = useNow();
  return (
    <Text fontSize="xs" color="fg.muted" data-testid="updated-ago">
      {at === undefined ? "not loaded yet" : `updated ${ago(at, now)}`}
    </Text>
  );
}

/** One section of a view: its title, its own freshness and error, its body once it has data. */
export function Section(props: {
  title: string;
  testId: string;
  updatedAt: number | undefined;
  error: ApiError | undefined;
  loaded: boolean;
  actions?: ReactNode;
  children: ReactNode;
}): ReactNode {
  return (
    <Box
      as="section"
      data-testid={props.testId}
      borderWidth="1px"
      borderColor="border"
      borderRadius="md"
      bg="bg"
      p={4}
      mb={4}
    >
      <Flex align="baseline" gap={3} mb={3} wrap="wrap">
        <Heading size="md">{props.title}</Heading>
        <Updated at={props.updatedAt} />
        <Box flex="1" />
        {props.actions}
      </Flex>
      {props.error ? <ErrorNote error={props.error} /> : null}
      {props.loaded ? props.children : props.error ? null : <Spinner size="sm" />}
    </Box>
  );
}

export function Empty({ children }: { children: ReactNode }): ReactNode {
  return (
    <Text color="fg.muted" fontSize="sm">
      {children}
    </Text>
  );
}

/** A plain table: a header row and one row per item, each cell text or a node. */
export function Grid(props: {
  headers: string[];
  rows: ReactNode[][];
  rowTestId?: string;
  rowKeys?: string[];
  empty?: string;
  rowProps?: (index: number) => Record<string, unknown>;
}): ReactNode {
  if (props.rows.length === 0) return <Empty>{props.empty ?? "none"}</Empty>;
  return (
    <Box overflowX="auto">
      <Table.Root size="sm" variant="line">
        <Table.Header>
          <Table.Row>
            {props.headers.map((h) => (
              <Table.ColumnHeader key={h}>{h}</Table.ColumnHeader>
            ))}
          </Table.Row>
        </Table.Header>
        <Table.Body>
          {props.rows.map((cells, i) => (
            <Table.Row key={props.rowKeys?.[i] ?? i} data-testid={props.rowTestId} {...props.rowProps?.(i)}>
              {cells.map((cell, j) => (
                <Table.Cell key={j}>{cell}</Table.Cell>
              ))}
            </Table.Row>
          ))}
        </Table.Body>
      </Table.Root>
    </Box>
  );
}

export function SubHeading({ children }: { children: ReactNode }): ReactNode {
  return (
    <Heading size="sm" mt={3} mb={1}>
      {children}
    </Heading>
  );
}
