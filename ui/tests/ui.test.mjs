// The dashboard in real Chromium against the e2e build, whose Tauri IPC is mocked at
// the @tauri-apps/api boundary (src/e2e/main.ts): every screen, in both themes, with
// screenshots saved to screenshots/.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { E2E_DIST, SCREENSHOTS, callsOf, launchChromium, openApp, selectTab, serve } from "./harness.mjs";

let browser;
let server;
const pages = [];

async function open(options) {
  const opened = await openApp(browser, server.url, options);
  pages.push(opened);
  return opened.page;
}

/** Text elements whose contrast with their background is under 4.5:1 (WCAG AA). */
function lowContrast(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const channel = (v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    const luminance = ({ r, g, b }) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const bad = [];
    for (const el of document.querySelectorAll("body *")) {
      if (!(el instanceof HTMLElement) || el.offsetParent === null) continue;
      if (el.closest(".visually-hidden, :disabled")) continue;
      const hasText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== "");
      if (!hasText) continue;
      const fg = parse(getComputedStyle(el).color);
      const [l1, l2] = [luminance(fg), luminance(background(el))];
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      if (ratio < 4.5) bad.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`);
    }
    return bad;
  });
}

// A run takes about 25 s; the limit only stops a stuck browser from hanging `make test`.
describe("dashboard", { timeout: 300_000 }, () => {
  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    server = await serve(E2E_DIST);
    browser = await launchChromium();
  });

  after(async () => {
    for (const { page, errors } of pages) {
      await page.context().close();
      assert.deepEqual(errors.map(String), [], "the page logged errors");
    }
    await browser?.close();
    await server?.close();
  });

  for (const colorScheme of ["light", "dark"]) {
    it(`renders every screen readably in the ${colorScheme} theme`, async () => {
      const page = await open({ colorScheme, mock: { status: "paused", update: "available" } });
      const suffix = colorScheme === "light" ? "" : "-dark";
      const screens = [
        ["Status", '[data-testid="gpu-card"] .badge'],
        ["Earnings", ".chart rect"],
        ["Ledger", '[data-testid="ledger-table"] tbody tr'],
        ["Logs", '[data-testid="log-table"] tbody tr'],
        ["Settings", "#field-lending-idle_minutes"],
      ];
      for (const [tab, ready] of screens) {
        await selectTab(page, tab);
        await page.waitForSelector(ready);
        if (tab === "Status") await page.getByRole("button", { name: "Check now" }).click();
        if (tab === "Status") await page.waitForSelector('[data-testid="checks"]');
        if (tab === "Settings") await page.getByRole("radio", { name: /Open egress/ }).check();
        if (tab === "Settings") await page.locator("#update-check").click();
        if (tab === "Settings") await page.waitForSelector("#update-notes");
        assert.equal(await page.locator(`#panel-${tab.toLowerCase()} h2`).first().innerText(), tab);
        assert.deepEqual(await lowContrast(page), [], `${tab} (${colorScheme}) has text under 4.5:1`);
        await page.screenshot({ path: join(SCREENSHOTS, `${tab.toLowerCase()}${suffix}.png`), fullPage: true });
      }
    });
  }

  it("says each resource's state and reason in plain words", async () => {
    const expected = {
      lending: ["Lending", "Your GPU is working for the network.", "Lending", "Relaying traffic for the network."],
      waiting: ["Waiting", "user active 12 s ago", "Waiting", "outside the schedule (Mon-Fri 22:00-07:00)"],
      paused: ["Paused", "game running: eldenring.exe", "Paused", "by you until 18:00"],
    };
    for (const [status, [gpuState, gpuReason, bwState, bwReason]] of Object.entries(expected)) {
      const page = await open({ mock: { status } });
      const gpu = page.locator("#gpu-state");
      const bw = page.locator("#bandwidth-state");
      assert.equal(await gpu.locator(".badge").innerText(), gpuState);
      assert.equal(await gpu.locator(".reason").innerText(), gpuReason);
      assert.equal(await bw.locator(".badge").innerText(), bwState);
      assert.equal(await bw.locator(".reason").innerText(), bwReason);
    }
  });

  it("shows live meters from the status", async () => {
    const page = await open();
    await page.waitForSelector('[data-testid="gpu-busy"]');
    const text = async (id) => page.getByTestId(id).innerText();
    assert.equal(await text("gpu-busy"), "43 %");
    assert.equal(await page.locator("meter#gpu-busy").getAttribute("value"), "43");
    assert.equal(await text("gpu-queued"), "2");
    assert.equal(await text("gpu-job-progress"), "44 % (1,843 of 4,096 workgroups)");
    assert.equal(await page.locator("progress#gpu-job-progress").getAttribute("value"), "1843");
    assert.equal(await text("bw-up"), "1.3 MB/s");
    assert.equal(await text("bw-down"), "830 kB/s");
    assert.equal(await text("bw-clients"), "3");
    assert.equal(await text("bw-quota"), "37 %");
  });

  it("pause and resume buttons send the right arguments", async () => {
    const page = await open();
    const gpu = page.getByTestId("gpu-card");
    await gpu.getByRole("button", { name: "Pause GPU: 1 hour" }).click();
    await page.waitForSelector('#gpu-state[data-state="paused"]');
    assert.equal(await page.locator("#gpu-state .reason").innerText(), "by you until 19:00");
    await gpu.getByRole("button", { name: "Pause GPU: until tomorrow" }).click();
    await gpu.getByRole("button", { name: "Pause GPU: until i resume" }).click();
    await page.getByRole("button", { name: "Pause bandwidth: 1 hour" }).click();
    await page.getByRole("button", { name: "Pause everything: until tomorrow" }).click();
    await gpu.getByRole("button", { name: "Resume GPU" }).click();
    await page.waitForSelector('#gpu-state[data-state="lending"]');
    await page.getByRole("button", { name: "Resume everything" }).click();
    await page.waitForSelector('#bandwidth-state[data-state="lending"]');
    assert.deepEqual(await callsOf(page, "pause"), [
      { target: "gpu", for: { seconds: 3600 } },
      { target: "gpu", for: "tomorrow" },
      { target: "gpu", for: "until_resumed" },
      { target: "bandwidth", for: { seconds: 3600 } },
      { target: "all", for: "tomorrow" },
    ]);
    assert.deepEqual(await callsOf(page, "resume"), [{ target: "gpu" }, { target: "all" }]);
  });

  it("a GPU that fails is shown paused with why, and Resume GPU starts it again", async () => {
    const page = await open({ mock: { status: "runner_stopped" } });
    await page.waitForSelector('#gpu-state[data-state="paused"]');
    const reason = await page.locator("#gpu-state .reason").innerText();
    assert.match(reason, /the GPU keeps failing .*spare resume gpu/);
    const gpu = page.getByTestId("gpu-card");
    assert.match(await gpu.getByRole("alert").innerText(), /the GPU itself fails, not a job/);
    await gpu.getByRole("button", { name: "Resume GPU" }).click();
    await page.waitForSelector('#gpu-state[data-state="lending"]');
    assert.equal(await gpu.getByRole("alert").count(), 0);
    assert.deepEqual(await callsOf(page, "resume"), [{ target: "gpu" }]);
  });

  it("a status-changed event updates the Status screen without a reload", async () => {
    const page = await open();
    await page.waitForSelector('#gpu-state[data-state="lending"]');
    await page.evaluate(() => (window.notReloaded = true));
    await page.evaluate(() => window.spareMock.emitStatus("paused"));
    await page.waitForSelector('#gpu-state[data-state="paused"]');
    assert.equal(await page.locator("#gpu-state .reason").innerText(), "game running: eldenring.exe");
    assert.equal(await page.getByTestId("gpu-queued").innerText(), "4");
    assert.equal(await page.evaluate(() => window.notReloaded), true);
    assert.equal((await callsOf(page, "status")).length, 1, "the UI polled instead of listening");
  });

  it("lists the diagnostics with their fixes", async () => {
    const page = await open();
    await page.getByRole("button", { name: "Check now" }).click();
    const items = page.locator('[data-testid="checks"] li');
    await items.first().waitFor();
    assert.equal(await items.count(), 5);
    const failed = page.locator('[data-testid="checks"] li[data-ok="false"]');
    assert.equal(await failed.count(), 2);
    assert.match(await failed.first().innerText(), /no Vulkan, Metal or DX12 adapter found\s*Fix: Install your GPU's driver/);
    assert.equal(await page.getByText("2 of 5 checks need you.").count(), 1);
  });

  it("draws the earnings chart from the report, by day, week and month", async () => {
    const page = await open();
    await selectTab(page, "Earnings");
    for (const period of ["week", "day", "month"]) {
      await page.getByRole("radio", { name: `By ${period}` }).check();
      const report = await page.evaluate((p) => window.spareMock.fixtures.reportFixture(p, false), period);
      const bars = new Map();
      for (const row of report.rows) {
        const bar = bars.get(row.start) ?? { gpu: 0n, bandwidth: 0n };
        bar.gpu += BigInt(row.gpu_micro);
        bar.bandwidth += BigInt(row.bandwidth_micro);
        bars.set(row.start, bar);
      }
      const max = [...bars.values()].reduce((m, b) => (b.gpu + b.bandwidth > m ? b.gpu + b.bandwidth : m), 0n);
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid="earnings-chart"] g[data-start]').length === n, bars.size);
      const svg = page.locator('[data-testid="earnings-chart"] svg');
      assert.equal(await svg.getAttribute("data-max-micro"), max.toString());
      const plot = Number(await svg.getAttribute("data-plot-height"));
      const drawn = await page.$$eval('[data-testid="earnings-chart"] rect', (rects) =>
        rects.map((r) => ({
          start: r.dataset.start,
          resource: r.dataset.resource,
          micro: r.dataset.micro,
          height: Number(r.getAttribute("height")),
          y: Number(r.getAttribute("y")),
        })),
      );
      assert.equal(drawn.length, bars.size * 2);
      for (const rect of drawn) {
        const value = bars.get(rect.start)[rect.resource];
        assert.equal(rect.micro, value.toString(), `${period} ${rect.start} ${rect.resource}`);
        const expected = Number((value * BigInt(plot * 100)) / max) / 100;
        assert.ok(Math.abs(rect.height - expected) < 0.011, `${period} ${rect.start} ${rect.resource}: ${rect.height} px, expected ${expected}`);
      }
      // The tallest bar reaches the top of the plot.
      const tallest = Math.max(...[...bars.keys()].map((s) => drawn.filter((r) => r.start === s).reduce((h, r) => h + r.height, 0)));
      assert.ok(Math.abs(tallest - plot) < 0.03);
      assert.equal(await page.locator('[data-testid="earnings-table"] tbody tr').count(), report.rows.length);
    }
    assert.deepEqual((await callsOf(page, "earnings")).map((a) => a.period), ["week", "day", "month"]);
  });

  it("shows demo work apart, never summed into earnings", async () => {
    const page = await open();
    assert.equal(await page.getByTestId("earned-today").innerText(), "Earned today: 0.006045 credits");
    assert.equal(await page.getByTestId("gpu-earned-today").innerText(), "0.004215 credits");
    assert.equal(await page.getByTestId("gpu-demo-today").innerText(), "0.12 credits");
    await selectTab(page, "Earnings");
    await page.waitForSelector('[data-testid="demo-apart"] dl');
    const report = await page.evaluate(() => window.spareMock.fixtures.reportFixture("week", false));
    const demo = page.getByTestId("demo-apart");
    assert.equal(await page.getByTestId("demo-credits").innerText(), "2.45 credits");
    assert.match(await demo.innerText(), /37 \(81,250 workgroups\)/);
    assert.match(await demo.innerText(), /12 \(734 MB relayed\)/);
    // The demo's own chart: its bars, labelled as demo credits, apart from earnings.
    const demoChart = page.getByTestId("demo-chart");
    assert.equal(await demoChart.locator("rect.bar-gpu").count(), 7);
    assert.match(await demoChart.locator("svg").getAttribute("aria-label"), /^Demo work \(demo credits, not earnings\) by /);
    assert.match(await demoChart.innerText(), /demo credits/);
    const earned = BigInt(report.in_range_earned_micro);
    const credits = `${earned / 1_000_000n}.${(earned % 1_000_000n).toString().padStart(6, "0").replace(/0+$/, "")} credits`;
    assert.match(await page.getByTestId("in-range").innerText(), new RegExp(`^Earned in this range: ${credits.replace(".", "\\.")} `));
  });

  it("estimates earnings net of electricity only when the report has GPU time", async () => {
    let page = await open();
    await selectTab(page, "Earnings");
    await page.getByRole("checkbox", { name: /electricity cost/ }).check();
    await page.getByTestId("electricity-note").waitFor();

    page = await open({ mock: { rowsWithGpuMs: true } });
    await selectTab(page, "Earnings");
    await page.getByRole("checkbox", { name: /electricity cost/ }).check();
    await page.getByLabel("Electricity price, in credits per kWh").fill("0.30");
    await page.getByLabel("GPU power draw while lending, in watts").fill("250");
    const report = await page.evaluate(() => window.spareMock.fixtures.reportFixture("week", true));
    const rows = page.locator('[data-testid="electricity-table"] tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.count(), report.rows.length);
    for (const row of report.rows) {
      const cost = (300_000n * 250n * BigInt(row.gpu_ms) + 1_800_000_000n) / 3_600_000_000n;
      assert.equal(await page.locator(`[data-testid="electricity-table"] tr[data-start="${row.start}"]`).getAttribute("data-cost-micro"), cost.toString());
    }
    await page.getByLabel("GPU power draw while lending, in watts").fill("lots");
    assert.match(await page.locator("#electricity-watts-error").innerText(), /in watts, 1 to 2000/);
  });

  it("pages through the ledger, shows receipts, verifies and exports", async () => {
    const page = await open();
    await selectTab(page, "Ledger");
    const rows = page.locator('[data-testid="ledger-table"] tbody tr[data-seq]');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 100);
    assert.equal(await page.getByTestId("page-range").innerText(), "Entries 1 to 100");
    await page.getByRole("button", { name: "Next 100" }).click();
    await page.getByText("Entries 101 to 200").waitFor();
    await page.getByRole("button", { name: "Next 100" }).click();
    await page.getByText("Entries 201 to 250").waitFor();
    assert.equal(await rows.count(), 50);
    assert.equal(await page.getByRole("button", { name: "Next 100" }).isDisabled(), true);
    await page.getByRole("button", { name: "Previous 100" }).click();
    await page.getByText("Entries 101 to 200").waitFor();
    assert.deepEqual(await callsOf(page, "ledger_entries"), [
      { after_seq: 0, limit: 100 },
      { after_seq: 100, limit: 100 },
      { after_seq: 200, limit: 100 },
      { after_seq: 100, limit: 100 },
    ]);

    const entry = await page.evaluate(() => window.spareMock.fixtures.entries[119]);
    const toggle = page.getByRole("button", { name: `Show receipt of entry ${entry.seq}` });
    assert.equal(await toggle.getAttribute("aria-expanded"), "false");
    await toggle.click();
    assert.equal(await page.getByRole("button", { name: `Hide receipt of entry ${entry.seq}` }).getAttribute("aria-expanded"), "true");
    assert.equal(await page.locator(`#receipt-${entry.seq} [data-testid="receipt-hex"]`).innerText(), entry.receipt_hex);
    assert.ok((await page.locator(`#receipt-${entry.seq}`).innerText()).includes(entry.signature_hex));

    await page.getByRole("button", { name: "Verify the ledger" }).click();
    assert.equal(await page.getByTestId("verify-result").innerText(), "Intact: 250 entries and 250 signatures checked; nothing was altered.");

    await page.getByRole("button", { name: "Export CSV" }).click();
    assert.equal(await page.getByTestId("export-result").innerText(), "Wrote 250 entries to spare-ledger.csv.");
    assert.deepEqual(await callsOf(page, "ledger_export_csv"), [{ path: "spare-ledger.csv" }]);
  });

  it("names the first bad entry when the ledger does not verify", async () => {
    const page = await open({ mock: { brokenLedger: true } });
    await selectTab(page, "Ledger");
    await page.getByRole("button", { name: "Verify the ledger" }).click();
    const result = page.getByTestId("verify-result");
    assert.equal(await result.getAttribute("data-intact"), "false");
    assert.match(await result.innerText(), /^Entry 131 fails: the signature does not match the receipt\./);
  });

  it("shows the log newest first, filters it by level, refreshes it and opens its folder", async () => {
    const page = await open();
    await selectTab(page, "Logs");
    const rows = page.locator('[data-testid="log-table"] tbody tr');
    await rows.first().waitFor();
    assert.equal(await page.getByTestId("log-folder").innerText(), "/home/owner/.local/share/org.spare.tray/logs");
    const lines = await page.evaluate(() => window.spareMock.fixtures.logLines);
    const newestFirst = (...levels) =>
      lines.filter((l) => levels.includes(l.level)).reverse().map((l) => [l.level, l.time, l.target, l.message]);
    const shown = () =>
      rows.evaluateAll((trs) =>
        trs.map((tr) => [tr.dataset.level, tr.querySelector("time").dateTime, tr.cells[2].textContent, tr.cells[3].textContent]),
      );
    const showsRows = (n) => page.waitForFunction((want) => document.querySelectorAll('[data-testid="log-table"] tbody tr').length === want, n);

    // Info and above unless the owner chooses otherwise.
    const level = page.getByLabel("Lines to show");
    assert.equal(await level.locator("option:checked").innerText(), "Info and above");
    assert.deepEqual(await shown(), newestFirst("error", "warn", "info"));
    assert.equal(await page.getByTestId("log-count").innerText(), "4 lines, newest first.");
    // The time in the computer's zone (Paris, as the line's own offset), the level in words.
    const newest = rows.first();
    assert.match(await newest.locator(".log-time").innerText(), /^6 Dec( 2026)?, 19:25:25$/);
    assert.equal(await newest.locator(".badge").innerText(), "Error");
    assert.equal(await rows.nth(1).locator(".badge").innerText(), "Warning");

    await level.selectOption({ label: "Errors" });
    await showsRows(1);
    assert.deepEqual(await shown(), newestFirst("error"));
    assert.match(await newest.locator(".log-message").innerText(), /fix="set another relay\.port in Settings/);
    await level.selectOption({ label: "All" });
    await showsRows(6);
    assert.deepEqual(await shown(), newestFirst("error", "warn", "info", "debug", "trace"));
    await level.selectOption({ label: "Debug and above" });
    await showsRows(5);
    assert.deepEqual(await shown(), newestFirst("error", "warn", "info", "debug"));
    await level.selectOption({ label: "Warnings and errors" });
    await showsRows(2);
    assert.deepEqual(await shown(), newestFirst("error", "warn"));

    // Refresh reads the log again: a line written since comes first.
    const line = { time: "2026-12-06T19:30:02.500+01:00", level: "warn", target: "node::control", message: "pause requested target=gpu" };
    await page.evaluate((l) => window.spareMock.addLogLine(l), line);
    await page.getByRole("button", { name: "Refresh" }).click();
    await showsRows(3);
    assert.deepEqual((await shown())[0], [line.level, line.time, line.target, line.message]);
    assert.deepEqual(await callsOf(page, "logs"), [
      { level: "info", limit: 500 },
      { level: "error", limit: 500 },
      { level: null, limit: 500 },
      { level: "debug", limit: 500 },
      { level: "warn", limit: 500 },
      { level: "warn", limit: 500 },
    ]);

    await page.getByRole("button", { name: "Open the folder" }).click();
    await page.waitForFunction(() => window.spareMock.callsOf("logs_open_folder").length === 1);
    assert.deepEqual(await callsOf(page, "logs_open_folder"), [{}]);
  });

  it("says when the log is empty, and why it or its folder could not be opened", async () => {
    let page = await open({ mock: { emptyLog: true } });
    await selectTab(page, "Logs");
    const empty = page.getByTestId("log-empty");
    await empty.waitFor();
    assert.match(await empty.innerText(), /^No log lines yet\. Less severe lines are not shown/);
    await page.getByLabel("Lines to show").selectOption({ label: "All" });
    await page.waitForFunction(() => document.querySelector('[data-testid="log-empty"]')?.textContent === "No log lines yet.");
    assert.equal(await page.getByTestId("log-folder").innerText(), "/home/owner/.local/share/org.spare.tray/logs");

    const unreadable = "cannot read /home/owner/.local/share/org.spare.tray/logs/spare.log: permission denied";
    const noFileManager = "no file manager could open /home/owner/.local/share/org.spare.tray/logs: xdg-open is missing";
    page = await open({
      mock: {
        fail: {
          logs: { code: "io_error", message: unreadable },
          logs_open_folder: { code: "io_error", message: noFileManager },
        },
      },
    });
    await selectTab(page, "Logs");
    const notice = page.locator('[data-error-code="io_error"]');
    await notice.waitFor();
    assert.equal(await notice.locator(".notice-detail").innerText(), unreadable);
    await page.getByRole("button", { name: "Open the folder" }).click();
    await page.getByText(noFileManager).waitFor();
    assert.equal(await notice.count(), 2);
    // Once the cause is fixed, Refresh reads the log.
    await page.evaluate(() => window.spareMock.clearFailures());
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator('[data-testid="log-table"] tbody tr').first().waitFor();
    assert.equal(await page.getByText(unreadable).count(), 0);
    assert.deepEqual(await lowContrast(page), []);
  });

  it("refuses each bad setting with the reason next to its field", async () => {
    const page = await open();
    await selectTab(page, "Settings");
    const cases = [
      ["lending.idle_minutes", "0", "0 is out of range: allowed 1 to 1440 minutes"],
      ["lending.idle_minutes", "1441", "1441 is out of range: allowed 1 to 1440 minutes"],
      ["lending.idle_minutes", "five", '"five" is not a whole number'],
      ["lending.idle_minutes", "", "is empty: enter 1 to 1440 minutes"],
      ["gpu.max_duty_cycle_percent", "101", "101 is out of range: allowed 1 to 100 percent"],
      ["gpu.max_duty_cycle_percent", "0", "0 is out of range: allowed 1 to 100 percent"],
      ["gpu.max_temperature_c", "49", "49 is out of range: allowed 50 to 100 °C"],
      ["gpu.max_temperature_c", "101", "101 is out of range: allowed 50 to 100 °C"],
      ["gpu.max_job_memory_mb", "4097", "4097 is out of range: allowed 1 to 4096 MB"],
      ["gpu.price_per_million_workgroups", "1.5", '"1.5" is not a whole number'],
      ["bandwidth.upload_kbps", "-5", '"-5" is not a whole number'],
      ["bandwidth.download_kbps", "100000001", "100000001 is out of range: allowed 0 to 100000000 kbit/s (0 = no cap)"],
      ["bandwidth.daily_quota_mb", "x", '"x" is not a whole number'],
      ["bandwidth.monthly_quota_gb", "1000001", "1000001 is out of range: allowed 0 to 1000000 GB (0 = no quota)"],
      ["relay.port", "0", "0 is out of range: allowed 1 to 65535"],
      ["relay.port", "65536", "65536 is out of range: allowed 1 to 65535"],
      ["lending.schedule", "Mon-Fry 22:00-07:00", '"Mon-Fry 22:00-07:00": "Fry" is not a day'],
      ["lending.schedule", "daily 25:00-26:00", '"25:00": hours go up to 23'],
      ["lending.schedule", "22:00-07:00", "a rule starts with its days"],
      ["lending.schedule", "Sat 10:00-10:00", "starts and ends at the same time"],
      ["relay.allow", "10.0.0.1:443", "allow-list entries name hosts, not addresses"],
      ["relay.allow", "example.com", "expected host:ports"],
      ["relay.allow", "example.com:0", '"0" is not a port (1 to 65535)'],
      ["relay.public_addresses", "example.com:4433", '"example.com:4433" is not an address'],
      ["updates.endpoint", "http://192.168.1.2/latest.json", "is plain http: use https"],
      ["updates.endpoint", "ftp://example.org/latest.json", "is not an https URL"],
      ["updates.endpoint", "example.org/latest.json", '"example.org/latest.json" is not a URL'],
      ["updates.endpoint", "https:///latest.json", "names no host"],
      ["updates.endpoint", "http://127.0.0.1.example.org/", "is plain http"],
    ];
    for (const [key, bad, reason] of cases) {
      const id = `#field-${key.replace(".", "-")}`;
      const field = page.locator(id);
      const good = await field.inputValue();
      await field.fill(bad);
      await page.getByRole("button", { name: "Save settings" }).click();
      const error = page.locator(`${id}-error`);
      await error.waitFor();
      assert.ok((await error.innerText()).includes(reason), `${key} = ${JSON.stringify(bad)}: ${await error.innerText()}`);
      assert.equal(await field.getAttribute("aria-invalid"), "true");
      assert.ok((await field.getAttribute("aria-describedby")).includes(`${id.slice(1)}-error`));
      // Focus moves to the refused field on the next frame.
      await page.waitForFunction((want) => document.activeElement?.id === want, id.slice(1));
      assert.match(await page.getByTestId("save-status").innerText(), /1 value was refused/);
      await field.fill(good);
    }

    // Allow-list mode with no destinations, and an empty program name.
    await page.getByRole("radio", { name: /Egress to an allow-list/ }).check();
    await page.getByRole("button", { name: "Save settings" }).click();
    assert.match(await page.locator("#field-relay-egress-error").innerText(), /the allow-list is empty/);
    await page.getByRole("radio", { name: /Peer relay only/ }).check();
    await page.getByRole("button", { name: "Add", exact: true }).click();
    assert.match(await page.locator("#field-lending-exclusive_apps-error").innerText(), /Enter a program name/);

    assert.deepEqual(await callsOf(page, "settings_set"), [], "a refused value reached the node");
  });

  it("saves good settings, with a program picked from the running ones", async () => {
    const page = await open();
    await selectTab(page, "Settings");
    await page.locator("#field-lending-idle_minutes").fill("10");
    await page.locator("#field-lending-schedule").fill("Mon-Fri 22:00-07:00\nsat,sun\n\ndaily 01:00-24:00");
    await page.locator("#field-gpu-max_duty_cycle_percent").fill("100");
    await page.locator("#field-gpu-max_temperature_c").fill("50");
    await page.locator("#field-gpu-max_job_memory_mb").fill("4096");
    await page.locator("#field-bandwidth-upload_kbps").fill("0");
    await page.locator("#field-bandwidth-monthly_quota_gb").fill("1000000");
    await page.locator("#field-relay-port").fill("65535");
    await page.getByRole("checkbox", { name: "Only while I am away (like the GPU)" }).check();
    await page.getByRole("radio", { name: /Egress to an allow-list/ }).check();
    await page.locator("#field-relay-allow").fill("example.com:443\n*.example.org:80,443\nmirror.example.net:8000-8100");
    await page.locator("#field-relay-public_addresses").fill("203.0.113.7:4433\n[2001:db8::1]:4433");
    await page.getByRole("button", { name: "Choose from running programs…" }).click();
    await page.getByLabel("Running programs").selectOption("steam");
    await page.getByRole("button", { name: "Add selected" }).click();
    await page.getByRole("button", { name: "Remove eldenring.exe" }).click();
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByText("Saved. The node uses the new settings now.").waitFor();

    const [saved] = await callsOf(page, "settings_set");
    assert.deepEqual(saved.config, {
      node: { ledger: null, key_file: null },
      lending: { idle_minutes: 10, schedule: ["Mon-Fri 22:00-07:00", "sat,sun", "daily 01:00-24:00"], exclusive_apps: ["steam"] },
      gpu: { enabled: true, max_duty_cycle_percent: 100, max_temperature_c: 50, max_job_memory_mb: 4096, price_per_million_workgroups: 100000 },
      bandwidth: { enabled: true, only_when_away: true, upload_kbps: 0, download_kbps: 0, daily_quota_mb: 0, monthly_quota_gb: 1000000 },
      relay: {
        port: 65535,
        egress: "allowlist",
        allow: ["example.com:443", "*.example.org:80,443", "mirror.example.net:8000-8100"],
        price_per_gib: 2000,
        public_addresses: ["203.0.113.7:4433", "[2001:db8::1]:4433"],
      },
      updates: { check: true, endpoint: null },
    });
    assert.equal(await page.locator(".field-error").count(), 0);
  });

  it("shows the node's own refusals next to their fields", async () => {
    const page = await open({
      mock: {
        fail: {
          settings_set: {
            code: "invalid_settings",
            message: "the settings were not saved",
            problems: [
              { key: "relay.port", line: 61, message: "4433 is in use by another program" },
              { key: "lending.schedule", line: 24, message: '"Sat,Sun": overlaps another rule' },
              { key: "updates.endpoint", line: 70, message: '"http://mirror.lan/" is plain http: use https' },
              { key: null, line: 3, message: "the file changed on disk while saving" },
            ],
          },
        },
      },
    });
    await selectTab(page, "Settings");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.locator("#field-relay-port-error").waitFor();
    assert.equal(await page.locator("#field-relay-port-error").innerText(), "4433 is in use by another program");
    assert.equal(await page.locator("#field-lending-schedule-error").innerText(), '"Sat,Sun": overlaps another rule');
    assert.equal(await page.locator("#field-updates-endpoint-error").innerText(), '"http://mirror.lan/" is plain http: use https');
    assert.equal(await page.getByTestId("other-problems").innerText(), "the file changed on disk while saving");
    assert.match(await page.getByTestId("save-status").innerText(), /3 values were refused/);
    assert.equal((await callsOf(page, "settings_set")).length, 1);
  });

  it("warns in plain words before open egress, and toggles start at login", async () => {
    const page = await open();
    await selectTab(page, "Settings");
    assert.equal(await page.getByTestId("open-egress-warning").count(), 0);
    await page.getByRole("radio", { name: /Open egress/ }).check();
    assert.match(await page.getByTestId("open-egress-warning").innerText(), /your IP address becomes your clients' on the internet/);
    const login = page.getByRole("checkbox", { name: "Start Spare when I log in" });
    await page.waitForFunction(() => !document.querySelector("#start-at-login").disabled);
    assert.equal(await login.isChecked(), false);
    await login.check();
    await page.waitForFunction(() => document.querySelector("#start-at-login").checked);
    assert.deepEqual(await callsOf(page, "autostart_set"), [{ enabled: true }]);
  });

  it("checks for updates on request and says when this Spare is the newest", async () => {
    const page = await open();
    await selectTab(page, "Settings");
    const button = page.locator("#update-check");
    const result = page.locator("#update-result");
    assert.equal(await result.getAttribute("role"), "status");
    assert.equal(await result.innerText(), "");
    await page.evaluate(() => window.spareMock.hold("update_check"));
    await button.click();
    await page.waitForFunction(() => document.querySelector("#update-result").textContent === "Checking…");
    assert.equal(await button.isDisabled(), true);
    await page.evaluate(() => window.spareMock.release("update_check"));
    await page.waitForFunction(() => document.querySelector("#update-result").textContent !== "Checking…");
    assert.equal(await result.innerText(), "Spare 0.1.0 is the newest version.");
    assert.equal(await button.isDisabled(), false);
    assert.equal(await page.locator("#update-install").count(), 0);
    assert.equal((await callsOf(page, "update_check")).length, 1);
  });

  it("offers a newer Spare with its notes, and installs it on request", async () => {
    const page = await open({ mock: { update: "available" } });
    await selectTab(page, "Settings");
    await page.locator("#update-check").click();
    const install = page.locator("#update-install");
    await install.waitFor();
    const result = page.locator("#update-result");
    assert.equal(await result.locator("p").innerText(), "Spare 0.2.0 is available (you have 0.1.0). Published 29 March 2025.");
    const { notes } = (await page.evaluate(() => window.spareMock.fixtures.updateFixture("available"))).available;
    // The notes are part of what the live region reads out.
    const shown = result.locator("#update-notes");
    assert.equal(await shown.innerText(), notes, "the notes lost their line breaks");
    assert.equal(await shown.locator("b").count(), 0, "markup in the notes was rendered");
    assert.equal(await shown.getAttribute("tabindex"), "0");
    assert.equal(await install.innerText(), "Install and restart");

    await page.evaluate(() => window.spareMock.hold("update_install"));
    await install.focus();
    await page.keyboard.press("Enter");
    const progress = page.locator("#update-install-status");
    await page.waitForFunction(() => document.querySelector("#update-install-status").textContent !== "");
    assert.equal(await progress.innerText(), "Downloading and installing Spare 0.2.0…");
    assert.equal(await install.isDisabled(), true);
    assert.equal(await page.locator("#update-check").isDisabled(), true);
    await page.evaluate(() => window.spareMock.release("update_install"));
    await page.getByText("Installed: Spare is restarting.").waitFor();
    assert.equal(await progress.getAttribute("role"), "status");
    assert.equal((await callsOf(page, "update_install")).length, 1);
  });

  it("shows why an update check or install failed, and lets the owner retry", async () => {
    const message =
      "the update is not signed with Spare's release key, so nothing was installed (signature mismatch): this Spare is unchanged; tell whoever runs the update server";
    const page = await open({ mock: { update: "available", fail: { update_install: { code: "update_error", message } } } });
    await selectTab(page, "Settings");
    await page.locator("#update-check").click();
    await page.locator("#update-install").click();
    const notice = page.locator('[data-error-code="update_error"]');
    await notice.waitFor();
    assert.ok((await notice.locator(".notice-headline").innerText()).startsWith("Update failed"));
    assert.equal(await notice.locator(".notice-detail").innerText(), message);
    assert.ok((await notice.innerText()).includes("not signed with Spare's release key"));
    assert.equal(await page.locator("#update-install-status").innerText(), "");
    assert.equal(await page.locator("#update-install").isDisabled(), false);

    const unreachable = "cannot reach the update server (timed out): check the connection, or the [updates] endpoint in Settings";
    await page.evaluate((error) => window.spareMock.fail("update_check", error), { code: "update_error", message: unreachable });
    await page.locator("#update-check").click();
    await page.getByText(unreachable).waitFor();
    assert.equal(await page.locator("#update-result").innerText(), "");
    assert.equal(await page.locator("#update-install").count(), 0);
  });

  it("refuses an update server that is not https, next to its field, and saves nothing", async () => {
    const page = await open();
    await selectTab(page, "Settings");
    const field = page.getByLabel("Update server (optional)");
    assert.equal(await field.getAttribute("id"), "field-updates-endpoint");
    await field.fill("http://example.org/x");
    await page.getByRole("button", { name: "Save settings" }).click();
    const error = page.locator("#field-updates-endpoint-error");
    await error.waitFor();
    assert.equal(await error.innerText(), '"http://example.org/x" is plain http: use https (plain http is allowed only to this machine)');
    assert.equal(await field.getAttribute("aria-invalid"), "true");
    assert.ok((await field.getAttribute("aria-describedby")).includes("field-updates-endpoint-error"));
    await page.waitForFunction(() => document.activeElement?.id === "field-updates-endpoint");
    assert.deepEqual(await callsOf(page, "settings_set"), [], "a refused endpoint reached the node");
  });

  it("saves the update settings, and Check now works with automatic checks off", async () => {
    const page = await open();
    await selectTab(page, "Settings");
    const auto = page.getByRole("checkbox", { name: "Check for updates automatically" });
    assert.equal(await auto.getAttribute("id"), "field-updates-check");
    assert.equal(await auto.isChecked(), true);
    assert.match(await page.locator(`#${await auto.getAttribute("aria-describedby")}`).innerText(), /only updates signed with Spare's release key install/);
    await auto.uncheck();
    const field = page.locator("#field-updates-endpoint");
    const endpoints = [
      ["https://user@example.org:8443/x", "https://user@example.org:8443/x"],
      ["http://127.0.0.1:8080/latest.json", "http://127.0.0.1:8080/latest.json"],
      ["http://localhost/latest.json", "http://localhost/latest.json"],
      [" http://[::1]:9000/latest.json ", "http://[::1]:9000/latest.json"],
      ["http://[0:0:0:0:0:0:0:1]/latest.json", "http://[0:0:0:0:0:0:0:1]/latest.json"],
      ["", null],
    ];
    for (const [typed] of endpoints) {
      await field.fill(typed);
      await page.getByRole("button", { name: "Save settings" }).click();
      await page.getByText("Saved. The node uses the new settings now.").waitFor();
    }
    const saved = (await callsOf(page, "settings_set")).map((a) => a.config.updates);
    assert.deepEqual(saved, endpoints.map(([, endpoint]) => ({ check: false, endpoint })));
    assert.equal(await auto.isChecked(), false);

    await page.locator("#update-check").click();
    await page.getByText("Spare 0.1.0 is the newest version.").waitFor();
    assert.equal((await callsOf(page, "update_check")).length, 1);
  });

  it("renders each error by its code", async () => {
    const headlines = {
      node_unavailable: "The Spare node is not running",
      invalid_settings: "Some settings were refused",
      ledger_error: "The earnings ledger could not be read",
      io_error: "A file could not be read or written",
      update_error: "Update failed",
      internal: "Something went wrong inside Spare",
    };
    for (const [code, headline] of Object.entries(headlines)) {
      const message = `detail for ${code}`;
      const page = await open({ mock: { fail: { status: { code, message, problems: [] } } } });
      const notice = page.locator(`[data-error-code="${code}"]`);
      await notice.waitFor();
      assert.ok((await notice.locator(".notice-headline").innerText()).startsWith(headline));
      assert.equal(await notice.locator(".notice-detail").innerText(), message);
      assert.equal(await notice.getAttribute("role"), "alert");
    }
    // A rejection that is not a CommandError is shown as internal, not lost.
    const page = await open({ mock: { fail: { earnings: "a bare string" } } });
    await selectTab(page, "Earnings");
    assert.equal(await page.locator('[data-error-code="internal"] .notice-detail').innerText(), "a bare string");
    // Errors on one screen leave the others working.
    const ledger = await open({ mock: { fail: { ledger_entries: { code: "ledger_error", message: "database is locked" } } } });
    await selectTab(ledger, "Ledger");
    await ledger.locator('[data-error-code="ledger_error"]').waitFor();
    await selectTab(ledger, "Status");
    await ledger.waitForSelector("#gpu-state");
  });

  it("shows when the node is down, and starts it again once the owner fixed the cause", async () => {
    const why = "Spare cannot read its node key. the keyring is locked\n  fix: unlock it";
    const page = await open({ mock: { fail: { status: { code: "node_unavailable", message: why } } } });
    const notice = page.locator('[data-error-code="node_unavailable"]');
    await notice.waitFor();
    assert.equal(await notice.locator(".notice-detail").textContent(), why);
    // The fix stands on a line of its own.
    assert.equal(await notice.locator(".notice-detail").innerText(), why.replace("\n  ", "\n"));
    // Still failing: the notice stays and says why, next to the button.
    await page.evaluate(() =>
      window.spareMock.fail("node_start", { code: "node_unavailable", message: "the keyring is still locked" }),
    );
    await page.getByRole("button", { name: "Start the node again" }).click();
    await page.getByText("It still cannot start: the keyring is still locked").waitFor();
    assert.equal(await page.locator("#gpu-state").count(), 0);
    // Fixed: the node runs and the screen shows it.
    await page.evaluate(() => window.spareMock.clearFailures());
    await page.getByRole("button", { name: "Start the node again" }).click();
    await page.waitForSelector("#gpu-state");
    assert.equal(await notice.count(), 0);
    assert.equal((await callsOf(page, "node_start")).length, 2);
    await page.screenshot({ path: join(SCREENSHOTS, "node-restarted.png") });

    // Pushed by the app: a restart needs nothing from the owner; a failure does.
    await page.evaluate(() => window.spareMock.emitDown({ why: "the node is restarting with the new settings", planned: true }));
    await page.getByText("The node is restarting with the new settings…").waitFor();
    assert.equal(await notice.count(), 0);
    await page.evaluate(() => window.spareMock.emitStatus("lending"));
    await page.waitForSelector("#gpu-state");
    await page.evaluate(() =>
      window.spareMock.emitDown({ why: "the node could not start: UDP port 7844 is in use", planned: false }),
    );
    await notice.waitFor();
    assert.equal(await notice.locator(".notice-detail").innerText(), "the node could not start: UDP port 7844 is in use");
    assert.deepEqual(await lowContrast(page), []);
    await page.screenshot({ path: join(SCREENSHOTS, "node-down.png") });
  });

  it("moves between tabs with the keyboard, with focus visible", async () => {
    const page = await open();
    await page.keyboard.press("Tab");
    const focused = () => page.evaluate(() => document.activeElement?.id);
    const selected = () => page.locator('[role="tab"][aria-selected="true"]').innerText();
    assert.equal(await focused(), "tab-status");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, "none", "the focused tab shows no focus ring");
    for (const [key, tab] of [
      ["ArrowRight", "earnings"],
      ["ArrowRight", "ledger"],
      ["ArrowRight", "logs"],
      ["End", "settings"],
      ["ArrowRight", "status"],
      ["ArrowLeft", "settings"],
      ["ArrowLeft", "logs"],
      ["Home", "status"],
      ["ArrowLeft", "settings"],
    ]) {
      await page.keyboard.press(key);
      assert.equal(await focused(), `tab-${tab}`, `after ${key}`);
      assert.equal((await selected()).toLowerCase(), tab);
      assert.equal(await page.locator('[role="tabpanel"]').getAttribute("aria-labelledby"), `tab-${tab}`);
    }
    assert.equal(await page.locator('[role="tab"][tabindex="0"]').count(), 1, "one tab stop for the tab list");
    // The checkbox is disabled (not focusable) until the app says whether it is on.
    await page.waitForSelector("#start-at-login:not([disabled])");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "panel-settings");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "start-at-login");
  });
});
