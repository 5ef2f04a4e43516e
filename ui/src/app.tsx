//! The dashboard: a header with today's earnings and five screens behind a tab list.

import { useEffect, useState } from "preact/hooks";
import { formatCredits } from "./credits";
import { liveStatus, startLiveStatus } from "./live-status";
import { EarningsScreen } from "./screens/earnings";
import { LedgerScreen } from "./screens/ledger";
import { LogsScreen } from "./screens/logs";
import { SettingsScreen } from "./screens/settings";
import { StatusScreen } from "./screens/status";
import { Tabs, type Tab } from "./tabs";

// Settings stays last, where desktop apps keep it; Logs, for when something went wrong,
// comes just before it.
const TABS: Tab[] = [
  { id: "status", label: "Status" },
  { id: "earnings", label: "Earnings" },
  { id: "ledger", label: "Ledger" },
  { id: "logs", label: "Logs" },
  { id: "settings", label: "Settings" },
];

export function App() {
  const [screen, setScreen] = useState("status");
  useEffect(() => {
    void startLiveStatus();
  }, []);
  const status = liveStatus.value;

  return (
    <>
      <header class="app-header">
        <h1>Spare</h1>
        {status && (
          <p class="today" data-testid="earned-today">
            Earned today: <strong>{formatCredits(status.earned_today_micro)}</strong>
            {status.demo && (
              <span class="tag tag-demo" title="Demo work is recorded apart and is worth nothing">
                demo mode
              </span>
            )}
          </p>
        )}
      </header>
      <main>
        <Tabs label="Dashboard" tabs={TABS} selected={screen} onSelect={setScreen}>
          {screen === "status" && <StatusScreen />}
          {screen === "earnings" && <EarningsScreen />}
          {screen === "ledger" && <LedgerScreen />}
          {screen === "logs" && <LogsScreen />}
          {screen === "settings" && <SettingsScreen />}
        </Tabs>
      </main>
    </>
  );
}
