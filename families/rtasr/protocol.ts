/** rtasr's ABI numbers (its messages come with the family's build). */
export const RtasrCtl = {
  SET_PARAM: 1,
  CONNECT: 2,
  GET_STATUS: 3,
  SEND_EVENT: 4,
  FLUSH: 5,
  CLEAR: 6,
  SET_AUTOFLUSH: 7,
  GET_AUTOFLUSH: 8,
} as const;
