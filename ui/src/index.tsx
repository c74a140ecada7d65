// The bundle Airflow's UI imports for each of our react_apps. It registers every component on
// globalThis under its react_app name (plugins/tradeops_plugin.py), so one module serves all three.
import { Desk } from "./desk/Desk";
import { SagaTab } from "./saga/SagaTab";
import { StateWidget } from "./StateWidget";

const components: Record<string, unknown> = {
  Desk,
  Saga: SagaTab,
  "Trading state": StateWidget,
};

for (const [name, component] of Object.entries(components)) {
  Reflect.set(globalThis, name, component);
}
