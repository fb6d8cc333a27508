/** parse-prometheus-text-format ships no types: it parses the text format into metric families. */
declare module "parse-prometheus-text-format" {
  const parse: (text: string) => unknown
  export default parse
}
