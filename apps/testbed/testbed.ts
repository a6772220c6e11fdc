/**
 * The Testbed service: the interop contract every roam implementation serves
 * (../shared/testbed/README.md). Field and variant order is the wire order.
 */
import { arg, defineService, type Infer, method, t } from "roam-ts";

export const Point = t.struct({ x: t.i32, y: t.i32 }, "Point");
export const Person = t.struct({ name: t.string, age: t.u8, email: t.option(t.string) }, "Person");
export const Rectangle = t.struct({ top_left: Point, bottom_right: Point, label: t.option(t.string) }, "Rectangle");
export const Color = t.literals(["Red", "Green", "Blue"], "Color");
export const Shape = t.enum(
  {
    Circle: { radius: t.f64 },
    Rectangle: { width: t.f64, height: t.f64 },
    Point: null,
  },
  "Shape",
);
export const Canvas = t.struct({ name: t.string, shapes: t.list(Shape), background: Color }, "Canvas");
export const Message = t.enum({ Text: t.string, Number: t.i64, Data: t.bytes }, "Message");
export const MathError = t.literals(["DivisionByZero", "Overflow"], "MathError");
export const LookupError = t.literals(["NotFound", "AccessDenied"], "LookupError");

export type Point = Infer<typeof Point>;
export type Person = Infer<typeof Person>;
export type Rectangle = Infer<typeof Rectangle>;
export type Color = Infer<typeof Color>;
export type Shape = Infer<typeof Shape>;
export type Canvas = Infer<typeof Canvas>;
export type Message = Infer<typeof Message>;
export type MathError = Infer<typeof MathError>;
export type LookupError = Infer<typeof LookupError>;

export const Testbed = defineService("Testbed", {
  echo: method([arg("message", t.string)], t.string),
  reverse: method([arg("message", t.string)], t.string),
  divide: method([arg("dividend", t.i64), arg("divisor", t.i64)], t.result(t.i64, MathError)),
  lookup: method([arg("id", t.u32)], t.result(Person, LookupError)),
  sum: method([arg("numbers", t.rx(t.i32))], t.i64),
  generate: method([arg("count", t.u32), arg("output", t.tx(t.i32))], t.unit),
  transform: method([arg("input", t.rx(t.string)), arg("output", t.tx(t.string))], t.unit),
  echoPoint: method([arg("point", Point)], Point),
  createPerson: method([arg("name", t.string), arg("age", t.u8), arg("email", t.option(t.string))], Person),
  rectangleArea: method([arg("rect", Rectangle)], t.f64),
  parseColor: method([arg("name", t.string)], t.option(Color)),
  shapeArea: method([arg("shape", Shape)], t.f64),
  createCanvas: method([arg("name", t.string), arg("shapes", t.list(Shape)), arg("background", Color)], Canvas),
  processMessage: method([arg("msg", Message)], Message),
  getPoints: method([arg("count", t.u32)], t.list(Point)),
  swapPair: method([arg("pair", t.tuple(t.i32, t.string))], t.tuple(t.string, t.i32)),
});
