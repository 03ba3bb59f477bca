// formatNumber and snap: a centred slider reads 0, not the float error of min + k * step (#16: "2.00e-15").
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatNumber, snap } from "../lib/format";

test("the centre of a slider whose steps do not add up exactly is 0", () => {
  for (const limit of [1.37, 0.3, 2.91, 17.3, 0.00123]) {
    const step = limit / 200;
    let value = -limit;
    for (let k = 0; k < 200; k++) value += step; // what stepping a range input from its minimum adds up to
    assert.notEqual(value, 0, `limit ${limit}: the sum is not exactly 0 (the case the slider met)`);
    assert.equal(snap(value, step), 0);
    assert.equal(formatNumber(value, step), "0");
    assert.equal(formatNumber(snap(-limit + 300 * step, step), step), formatNumber(limit / 2));
  }
});

test("without a resolution small numbers keep their exponent; with one, only those below half of it are 0", () => {
  assert.equal(formatNumber(2e-15), "2.00e\u221215");
  assert.equal(formatNumber(-0.006, 0.01), "\u22120.006");
  assert.equal(formatNumber(0.0049, 0.01), "0");
  assert.equal(snap(0.3000000000000004, 0.1), 0.3);
});
