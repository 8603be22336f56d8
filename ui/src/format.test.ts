import { describe, expect, it } from "vitest";
import { bytes, duration, rate, untilNextMinute, upFor } from "./format";

describe("formatting", () => {
  it("reads sizes, rates and durations like people do", () => {
    expect(bytes(0)).toBe("0 B");
    expect(bytes(1500)).toBe("1.5 kB");
    expect(bytes(2_500_000_000)).toBe("2.5 GB");
    expect(rate(-5)).toBe("0 B/s");
    expect(duration(59)).toBe("59 s");
    expect(duration(185)).toBe("3 min");
    expect(duration(7500)).toBe("2 h 05 min");
    expect(upFor(59)).toBe("less than a minute");
    expect(upFor(61)).toBe("1 min");
    // 2 min 05 s up: "2 min" until 3 min, 55 s from now.
    expect(untilNextMinute(125_000, 0)).toBe(55_000);
    expect(untilNextMinute(1_000, 10)).toBe(60_000);
  });
});
