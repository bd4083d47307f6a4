// Binary payloads on the widget's comm (js/widget/src/parts.js, SPEC §4.5): splitting into
// parts of at most 4 MiB, joining them back in any order, and base64 decoding.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { base64ToBytes, eventCellBytes, MAX_PART, PartCollector, sendInParts } from "../widget/src/parts.js";

function recorder() {
  const sent = [];
  return { sent, send: (content, buffers) => sent.push({ content, buffers }) };
}

const sizes = (sent) => sent.map(({ buffers }) => buffers[0].byteLength);

describe("sendInParts", () => {
  test("splits in order with the same message on every part", () => {
    const { sent, send } = recorder();
    const data = Uint8Array.from({ length: 10 }, (_, i) => i);
    assert.equal(sendInParts(send, { kind: "fetch", id: "a" }, data, 4), 3);
    assert.deepEqual(
      sent.map(({ content }) => content),
      [0, 1, 2].map((part) => ({ kind: "fetch", id: "a", part, parts: 3 })),
    );
    assert.deepEqual(sizes(sent), [4, 4, 2]);
    assert.ok(sent.every(({ buffers }) => buffers.length === 1));
    assert.deepEqual(
      sent.flatMap(({ buffers }) => Array.from(buffers[0])),
      Array.from(data),
    );
  });

  test("an exact multiple has no empty tail", () => {
    const { sent, send } = recorder();
    sendInParts(send, {}, new Uint8Array(8), 4);
    assert.deepEqual(sizes(sent), [4, 4]);
  });

  for (const empty of [new Uint8Array(0), null, undefined, new ArrayBuffer(0)]) {
    test(`an empty payload (${empty === null ? "null" : typeof empty}) is one empty part`, () => {
      const { sent, send } = recorder();
      assert.equal(sendInParts(send, { kind: "event" }, empty), 1);
      assert.deepEqual(sent[0].content, { kind: "event", part: 0, parts: 1 });
      assert.equal(sent[0].buffers[0].byteLength, 0);
    });
  }

  test("parts are at most MAX_PART = 4 MiB by default", () => {
    assert.equal(MAX_PART, 4 * 1024 * 1024);
    const { sent, send } = recorder();
    sendInParts(send, {}, new Uint8Array(2 * MAX_PART + 3));
    assert.deepEqual(sizes(sent), [MAX_PART, MAX_PART, 3]);
  });

  test("typed arrays and views send exactly their own bytes", () => {
    const cells = new Uint32Array([1, 2, 3, 4, 5]).subarray(1, 4); // [2, 3, 4], offset 4
    const { sent, send } = recorder();
    sendInParts(send, {}, cells, 8);
    assert.deepEqual(sizes(sent), [8, 4]);
    const joined = new Uint8Array([...sent[0].buffers[0], ...sent[1].buffers[0]]);
    assert.deepEqual(Array.from(new Uint32Array(joined.buffer)), [2, 3, 4]);
    const view = new DataView(new Uint8Array([9, 8, 7, 6]).buffer, 1, 2);
    const other = recorder();
    sendInParts(other.send, {}, view);
    assert.deepEqual(Array.from(other.sent[0].buffers[0]), [8, 7]);
    const raw = recorder();
    sendInParts(raw.send, {}, new Uint8Array([5, 6]).buffer);
    assert.deepEqual(Array.from(raw.sent[0].buffers[0]), [5, 6]);
  });

  test("other payloads are refused", () => {
    assert.throws(() => sendInParts(() => {}, {}, "text"), TypeError);
    assert.throws(() => sendInParts(() => {}, {}, [1, 2]), TypeError);
  });
});

describe("PartCollector", () => {
  function split(data, maxPart) {
    const { sent, send } = recorder();
    sendInParts(send, { kind: "page", id: "p" }, data, maxPart);
    return sent;
  }

  for (const order of [
    [0, 1, 2],
    [2, 0, 1],
    [1, 2, 0],
  ]) {
    test(`joins parts received in the order ${order}`, () => {
      const data = Uint8Array.from({ length: 11 }, (_, i) => 100 + i);
      const parts = split(data, 4);
      const collector = new PartCollector();
      const results = order.map((i) => collector.add("k", parts[i].content, parts[i].buffers));
      assert.deepEqual(results.slice(0, -1), [null, null]);
      const { message, bytes } = results.at(-1);
      assert.ok(bytes instanceof Uint8Array);
      assert.deepEqual(Array.from(bytes), Array.from(data));
      assert.equal(message.part, order[0], "the first message received is kept");
      assert.equal(message.kind, "page");
    });
  }

  test("ipywidgets' DataViews are read as bytes", () => {
    const collector = new PartCollector();
    const bytes = new Uint8Array([0, 1, 2, 3, 4, 5]);
    assert.equal(collector.add("k", { part: 0, parts: 2 }, [new DataView(bytes.buffer, 0, 2)]), null);
    const done = collector.add("k", { part: 1, parts: 2 }, [new DataView(bytes.buffer, 4, 2)]);
    assert.deepEqual(Array.from(done.bytes), [0, 1, 4, 5]);
  });

  test("a message without part numbers is complete at once", () => {
    const collector = new PartCollector();
    const done = collector.add("k", { kind: "fetch_reply" }, [new Uint8Array([7])]);
    assert.deepEqual(Array.from(done.bytes), [7]);
    assert.equal(collector.add("k", { kind: "fetch_reply" }, []).bytes.byteLength, 0);
    assert.equal(collector.add("k", { kind: "fetch_reply" }, undefined).bytes.byteLength, 0);
  });

  test("keys are kept apart", () => {
    const collector = new PartCollector();
    assert.equal(collector.add("a", { part: 0, parts: 2 }, [new Uint8Array([1])]), null);
    assert.equal(collector.add("b", { part: 0, parts: 2 }, [new Uint8Array([2])]), null);
    assert.deepEqual(Array.from(collector.add("b", { part: 1, parts: 2 }, [new Uint8Array([3])]).bytes), [2, 3]);
    assert.deepEqual(Array.from(collector.add("a", { part: 1, parts: 2 }, [new Uint8Array([4])]).bytes), [1, 4]);
  });

  test("a part twice or out of range is refused", () => {
    const collector = new PartCollector();
    collector.add("k", { part: 0, parts: 3 }, [new Uint8Array([1])]);
    assert.throws(() => collector.add("k", { part: 0, parts: 3 }, [new Uint8Array([1])]), /bad part 0 of 3/);
    assert.throws(() => collector.add("k", { part: 3, parts: 3 }, [new Uint8Array([1])]), /bad part 3 of 3/);
    assert.throws(() => collector.add("j", { part: -1, parts: 2 }, [new Uint8Array([1])]), /bad part -1/);
  });

  test("clear() forgets incomplete payloads", () => {
    const collector = new PartCollector();
    collector.add("k", { part: 0, parts: 2 }, [new Uint8Array([1])]);
    collector.clear();
    assert.equal(collector.add("k", { part: 1, parts: 2 }, [new Uint8Array([2])]), null);
  });
});

describe("base64ToBytes", () => {
  test("decodes standard base64", () => {
    assert.deepEqual(Array.from(base64ToBytes("AQID")), [1, 2, 3]);
    assert.deepEqual(Array.from(base64ToBytes("AQAAAAMAAAA=")), [1, 0, 0, 0, 3, 0, 0, 0]);
    assert.equal(base64ToBytes("").byteLength, 0);
  });
  test("round-trips every byte value", () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => 255 - i);
    const decoded = base64ToBytes(Buffer.from(bytes).toString("base64"));
    assert.ok(decoded instanceof Uint8Array);
    assert.deepEqual(Array.from(decoded), Array.from(bytes));
  });
  test("refuses text that is not base64", () => {
    assert.throws(() => base64ToBytes("not base64!"));
  });
});

describe("eventCellBytes", () => {
  test("a selection's list or base64 set becomes one buffer", () => {
    const list = eventCellBytes({ type: "selection", cells: [3, 1], source: "lasso" });
    assert.deepEqual(list.event.cells, { encoding: "u32-base64", count: 2, data: null });
    assert.deepEqual(Array.from(new Uint32Array(list.bytes.buffer)), [3, 1]);
    assert.equal(list.groupBytes, null);
    const bitset = eventCellBytes({ type: "selection", cells: { encoding: "bitset-base64", n: 9, count: 2, data: "AwA=" }, source: "knn" });
    assert.deepEqual(bitset.event.cells, { encoding: "bitset-base64", n: 9, count: 2, data: null });
    assert.deepEqual(Array.from(bitset.bytes), [3, 0]);
  });

  test("groups: every group's bytes in order, their lengths in groupBytes", () => {
    const event = {
      type: "groups",
      groups: [
        { id: "g1", name: "a", color: "#000000", visible: true, cells: [7] },
        { id: "g2", name: "b", color: "#000000", visible: false, cells: { encoding: "bitset-base64", n: 9, count: 1, data: "AQA=" } },
      ],
    };
    const out = eventCellBytes(event);
    assert.deepEqual(out.groupBytes, [4, 2]);
    assert.deepEqual(Array.from(out.bytes), [7, 0, 0, 0, 1, 0]);
    assert.equal(out.event.groups[1].visible, false);
    assert.deepEqual(out.event.groups[0].cells, { encoding: "u32-base64", count: 1, data: null });
    assert.equal(event.groups[0].cells[0], 7, "the input is not changed");
    assert.deepEqual(eventCellBytes({ type: "groups", groups: [] }).groupBytes, []);
  });

  test("other events have no cell bytes", () => {
    assert.equal(eventCellBytes({ type: "hover", cell: 1 }), null);
    assert.equal(eventCellBytes({ type: "groups", groups: [{ cells: "x" }] }), null);
  });
});
